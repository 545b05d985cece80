"""Checking rules against the action registry: located errors, among them an action whose own timeouts do not
fit in its rule's deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import ConfigError
from remediator.app import build_registry, load_checked, rule_errors
from remediator.config import RemediatorConfig


def check(*rules: dict[str, Any]) -> list[str]:
    config = RemediatorConfig.model_validate({"webhook_token": "t", "rules": list(rules)})
    return [str(detail) for detail in rule_errors(config, build_registry(config))]


def rule(action: str, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": f"r-{action}", "matchers": ['alertname="X"'], "action": action, "params": params, **fields}


def test_a_command_timeout_longer_than_the_rules_deadline_is_a_located_error_with_both_figures() -> None:
    errors = check(rule("log", {}), rule("command", {"argv": ["backup"], "timeout_seconds": 600}))
    assert len(errors) == 1
    assert errors[0].startswith("rules[1].params.timeout_seconds: ")
    assert "600s" in errors[0]
    assert "timeout_seconds 60s" in errors[0]  # the rule's default deadline


def test_a_command_with_the_default_timeout_under_the_default_deadline_is_an_error() -> None:
    # The command's default (300 s) does not fit the rule's default (60 s): one of them must be set.
    [error] = check(rule("command", {"argv": ["backup"]}))
    assert error.startswith("rules[0].params.timeout_seconds: ")
    assert "300s" in error


def test_an_http_request_timeout_longer_than_the_deadline_is_an_error() -> None:
    params = {"url": "http://127.0.0.1:1/x", "timeout_seconds": 30}
    [error] = check(rule("http_request", params, timeout_seconds=20))
    assert error.startswith("rules[0].params.timeout_seconds: ")
    assert "30s" in error
    assert "20s" in error


def test_a_docker_restart_adds_its_stop_api_and_wait_timeouts() -> None:
    params = {"container": "loki", "stop_timeout_seconds": 10, "api_timeout_seconds": 10, "wait_seconds": 60}
    [error] = check(rule("docker_restart", params, timeout_seconds=75))
    assert error.startswith("rules[0].params.wait_seconds: ")
    assert "stop_timeout_seconds 10 + api_timeout_seconds 10 + wait_seconds 60 = 80s" in error
    assert "timeout_seconds 75s" in error
    assert check(rule("docker_restart", params, timeout_seconds=80)) == []


@pytest.mark.parametrize(
    ("action", "params", "deadline"),
    [
        ("command", {"argv": ["backup"], "timeout_seconds": 600}, 600),
        ("command", {"argv": ["backup"], "timeout_seconds": 30}, 60),
        ("http_request", {"url": "http://127.0.0.1:1/x"}, 60),
        ("docker_restart", {"container": "loki"}, 60),
        ("log", {}, 1),
    ],
)
def test_an_action_whose_own_timeouts_fit_in_the_deadline_passes(
    action: str, params: dict[str, Any], deadline: float
) -> None:
    assert check(rule(action, params, timeout_seconds=deadline)) == []


def test_invalid_parameters_are_reported_without_a_timeout_error_on_top() -> None:
    errors = check(rule("command", {"argv": [], "timeout_seconds": 600}))
    assert [e.split(":")[0] for e in errors] == ["rules[0].params.argv"]


def test_loading_refuses_a_rule_whose_deadline_does_not_cover_its_command(tmp_path: Path) -> None:
    path = tmp_path / "remediator.yml"
    path.write_text(
        "webhook_token: t\n"
        "rules:\n"
        "  - {name: b, matchers: ['alertname=\"B\"'], action: command,\n"
        "     params: {argv: [backup], timeout_seconds: 600}, timeout_seconds: 120}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_checked(path)
    assert "rules[0].params.timeout_seconds" in str(raised.value)
    assert "120s" in str(raised.value)


def playbook(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "matchers": ['alertname="X"'], "steps": list(steps)}


def test_a_step_after_an_unconditional_escalate_step_can_never_run_and_is_a_located_error() -> None:
    [error] = check(
        playbook(
            {"name": "hand-over", "action": "escalate", "params": {"note": "a human decides"}},
            {"name": "restart", "action": "log", "params": {}},
        )
    )
    assert error.startswith("rules[0].steps[1]: ")
    assert "hand-over" in error


def test_a_step_after_an_escalate_step_with_a_when_can_run_when_it_does_not_hold() -> None:
    config = RemediatorConfig.model_validate(
        {
            "webhook_token": "t",
            "prometheus": {"url": "http://127.0.0.1:9090"},
            "rules": [
                playbook(
                    {"name": "hand-over", "action": "escalate", "params": {}, "when": "vector(1) > 0"},
                    {"name": "restart", "action": "log", "params": {}},
                )
            ],
        }
    )
    assert rule_errors(config, build_registry(config)) == []
