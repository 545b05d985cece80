"""The remediator's configuration models: label parameters with exactly one allowlist, cooldown targets, outbox
bounds, the state and audit backends they need, duplicate rule names, and where state: memory keeps its file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.config import EscalationConfig, LabelParam, RemediatorConfig, RuleConfig


def rule(**fields: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "r", "matchers": ["alertname=A"], "action": "log"} | fields)


def refused(model: type[Any], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return str(caught.value)


@pytest.mark.parametrize(
    "data",
    [{"label": "service"}, {"label": "service", "allowed": ["a"], "map": {"a": "b"}}],
)
def test_a_label_parameter_needs_exactly_one_allowlist(data: dict[str, Any]) -> None:
    assert "exactly one of allowed" in refused(LabelParam, data)


@pytest.mark.parametrize(
    "data",
    [
        {"label": "s", "allowed": ["api\n"]},
        {"label": "s", "allowed": ["a\x00b"]},
        {"label": "s", "map": {"api\r": "x"}},
        {"label": "s", "map": {"api": "x\ny"}},
    ],
)
def test_allowlisted_values_may_not_carry_control_characters(data: dict[str, Any]) -> None:
    assert "control characters" in refused(LabelParam, data)


def test_an_allowlist_passes_values_through_and_a_map_translates_them() -> None:
    allowed = LabelParam.model_validate({"label": "s", "allowed": ["api", "web"]})
    mapped = LabelParam.model_validate({"label": "s", "map": {"api": "mt-api-1"}})
    assert (allowed.resolve("web"), allowed.resolve("db"), allowed.example()) == ("web", None, "api")
    assert (mapped.resolve("api"), mapped.resolve("mt-api-1"), mapped.example()) == ("mt-api-1", None, "mt-api-1")


def test_the_cooldown_target_defaults_to_the_rule_and_its_sorted_bound_values() -> None:
    assert rule().target_for({}) == "r"
    assert rule().target_for({"queue": "q", "host": "h"}) == "r:h:q"


def test_a_target_template_is_filled_with_bound_values_only() -> None:
    templated = rule(target="svc/{service}/{unbound}")
    assert templated.target_for({"service": "api"}) == "svc/api/{unbound}"


@pytest.mark.parametrize(
    "fields",
    [{"name": "has space"}, {"name": ""}, {"matchers": []}, {"matchers": ["not a matcher ~~"]}, {"max_attempts": 0}],
)
def test_a_malformed_rule_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        rule(**fields)


def test_continue_is_spelled_as_in_alertmanager() -> None:
    assert rule(**{"continue": True}).continue_matching is True
    assert rule().continue_matching is False


def test_a_lease_must_outlast_one_send() -> None:
    assert "lease_seconds must exceed" in refused(EscalationConfig, {"lease_seconds": 10, "send_timeout_seconds": 10})


def test_the_backoff_ceiling_is_at_least_its_start() -> None:
    message = refused(EscalationConfig, {"backoff_initial_seconds": 60, "backoff_max_seconds": 30})
    assert "backoff_max_seconds must be at least" in message


def test_priorities_of_the_escalation_matrix_are_p0_to_p3() -> None:
    assert "after_minutes" in refused(EscalationConfig, {"after_minutes": {"P4": 1}})


def test_duplicate_rule_names_are_refused_naming_them() -> None:
    message = refused(RemediatorConfig, {"rules": [rule().model_dump(by_alias=True)] * 2})
    assert "duplicate rule name(s): r" in message


def test_redis_state_needs_its_settings_and_postgres_audit_its_dsn() -> None:
    assert "state: redis needs state_redis" in refused(RemediatorConfig, {"state": "redis"})
    assert "audit: postgres needs audit_postgres" in refused(RemediatorConfig, {"audit": "postgres"})


def test_both_an_inline_token_and_a_token_file_is_an_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("t0ken\n")
    message = refused(RemediatorConfig, {"webhook_token": "t0ken", "webhook_token_file": str(token_file)})
    assert "not both" in message


def test_unknown_keys_are_errors_anywhere() -> None:
    assert "Extra inputs are not permitted" in refused(RemediatorConfig, {"limits": {"concurency": 2}})


@pytest.mark.parametrize(
    ("fields", "state_file"),
    [
        ({"audit_path": "/var/lib/t/audit.sqlite3"}, Path("/var/lib/t/audit.state.sqlite3")),
        ({"audit_path": "/var/lib/t/audit"}, Path("/var/lib/t/audit.state")),
        ({"audit_path": ":memory:"}, Path(":memory:")),
        ({"audit_path": "/a/audit.db", "state_path": "/b/state.db"}, Path("/b/state.db")),
    ],
)
def test_state_memory_keeps_its_file_beside_the_audit_unless_told(fields: dict[str, Any], state_file: Path) -> None:
    assert RemediatorConfig.model_validate(fields).state_file() == state_file


def test_the_configuration_is_frozen() -> None:
    config = RemediatorConfig()
    with pytest.raises(ValidationError):
        config.dry_run = True  # type: ignore[misc]
