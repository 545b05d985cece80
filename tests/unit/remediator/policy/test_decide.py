"""The pure policy, called directly: every decision reason precheck, no_rule and denied can give, with its
boundaries, and the helpers around them (matching_rules, bind, escalation_delay, breaker_key, Plan)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from remediator.actions.base import ActionRegistry
from remediator.app import build_registry
from remediator.config import RemediatorConfig, RuleConfig
from remediator.intake.payload import WebhookAlert
from remediator.policy.decide import (
    DENIALS,
    ESCALATING,
    Plan,
    Reason,
    bind,
    breaker_key,
    denied,
    escalation_delay,
    matching_rules,
    no_rule,
    precheck,
)
from remediator.state.base import Denial
from remediator.state.incident import CLOSED, OPEN, Incident

AT = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)  # a Monday
LABELS = {"alertname": "ServiceDown", "service": "api", "priority": "P1"}


def rule(**fields: Any) -> RuleConfig:
    base: dict[str, Any] = {"name": "restart", "matchers": ["alertname=ServiceDown"], "action": "log"}
    return RuleConfig.model_validate(base | fields)


def config(*rules: RuleConfig, **fields: Any) -> RemediatorConfig:
    return RemediatorConfig.model_validate({"audit_path": ":memory:", **fields}).model_copy(update={"rules": rules})


def registry(cfg: RemediatorConfig | None = None) -> ActionRegistry:
    return build_registry(cfg if cfg is not None else config())


def alert(labels: dict[str, str] | None = None, status: str = "firing") -> WebhookAlert:
    return WebhookAlert(status, dict(LABELS if labels is None else labels), AT - dt.timedelta(hours=1), "ab12")  # type: ignore[arg-type]


def incident(attempts: int = 0, last: dt.datetime | None = None, state: str = OPEN) -> Incident:
    return Incident("ab12@x", "ServiceDown", dict(LABELS), "restart", state, attempts, last, None, False, None)


def decide(r: RuleConfig, inc: Incident | None = None, labels: dict[str, str] | None = None, **cfg: Any) -> Plan:
    c = config(r, **cfg)
    return precheck(c, registry(c), alert(labels), r, inc, AT)


SERVICE = {"service": {"label": "service", "allowed": ["api", "gateway"]}}


# --- precheck: one test per reason it gives -----------------------------------------------------------------


def test_a_due_action_is_executed_with_its_bound_parameters_and_target() -> None:
    r = rule(params={"message": "{service}"}, label_params=SERVICE)
    plan = decide(r)
    assert plan.reason is Reason.EXECUTED
    assert plan.bound == {"service": "api"}
    assert plan.target == "restart:api"
    assert plan.params is not None
    assert plan.params.model_dump() == {"message": "api"}
    assert plan.detail == "running log"
    assert not plan.escalates


def test_a_closed_incident_never_acts_again_even_when_everything_else_allows() -> None:
    plan = decide(rule(), incident(state=CLOSED))
    assert plan.reason is Reason.ALREADY_RESOLVED
    assert plan.target is None
    assert plan.params is None
    assert not plan.escalates


def test_a_closed_incident_wins_over_the_ignore_action() -> None:
    assert decide(rule(action="ignore"), incident(state=CLOSED)).reason is Reason.ALREADY_RESOLVED


def test_the_ignore_action_is_ignored_without_escalating() -> None:
    plan = decide(rule(action="ignore"))
    assert plan.reason is Reason.IGNORED
    assert "ignored by rule restart" in plan.detail
    assert not plan.escalates


def test_the_escalate_action_hands_the_alert_to_a_human_with_the_rule_as_target() -> None:
    plan = decide(rule(action="escalate"))
    assert plan.reason is Reason.ESCALATION_ONLY
    assert plan.target == "restart"
    assert plan.escalates


def test_the_escalate_action_escalates_even_when_its_labels_would_not_bind() -> None:
    plan = decide(rule(action="escalate", label_params=SERVICE), labels={"alertname": "ServiceDown"})
    assert plan.reason is Reason.ESCALATION_ONLY


LOOK = {"kind": "diagnose", "name": "look", "probes": [{"kind": "redis_info", "name": "redis"}]}
PAGE = {"name": "page", "action": "escalate"}


def playbook(*steps: dict[str, Any], **fields: Any) -> RuleConfig:
    base: dict[str, Any] = {"name": "restart", "matchers": ["alertname=ServiceDown"], "steps": steps}
    return RuleConfig.model_validate(base | fields)


def test_an_escalate_step_after_diagnose_steps_gathers_evidence_first_with_its_bound_labels() -> None:
    plan = decide(playbook(LOOK, PAGE, label_params=SERVICE))
    assert plan.reason is Reason.ESCALATION_ONLY
    assert plan.gathers
    assert plan.bound == {"service": "api"}
    assert plan.target == "restart:api"
    assert plan.escalates
    assert "gathers evidence" in plan.detail


def test_an_escalate_step_before_any_diagnose_step_hands_over_at_once() -> None:
    plan = decide(playbook(PAGE, LOOK))
    assert plan.reason is Reason.ESCALATION_ONLY
    assert not plan.gathers
    assert plan.detail == "rule restart hands this alert to a human"


def test_an_evidence_first_handover_whose_labels_do_not_bind_still_hands_over_at_once() -> None:
    plan = decide(playbook(LOOK, PAGE, label_params=SERVICE), labels={"alertname": "ServiceDown"})
    assert plan.reason is Reason.ESCALATION_ONLY
    assert not plan.gathers
    assert "label 'service' is missing" in plan.detail


def test_a_pure_escalate_rule_gathers_nothing() -> None:
    assert not decide(rule(action="escalate")).gathers


def test_a_missing_label_is_not_allowed_and_escalates() -> None:
    plan = decide(rule(label_params=SERVICE), labels={"alertname": "ServiceDown"})
    assert plan.reason is Reason.NOT_ALLOWED
    assert plan.detail == "label 'service' is missing"
    assert plan.target is None
    assert plan.escalates


def test_a_label_value_outside_the_allowlist_is_not_allowed() -> None:
    plan = decide(rule(label_params=SERVICE), labels={"alertname": "ServiceDown", "service": "db; rm -rf /"})
    assert plan.reason is Reason.NOT_ALLOWED
    assert "is not in the allowlist of parameter 'service'" in plan.detail


def test_an_allowlisted_value_the_action_rejects_is_not_allowed() -> None:
    label_params = {"container": {"label": "service", "allowed": ["api server"]}}
    r = rule(action="docker_restart", params={"container": "{container}"}, label_params=label_params)
    plan = decide(r, labels={"alertname": "ServiceDown", "service": "api server"})
    assert plan.reason is Reason.NOT_ALLOWED
    assert plan.detail.startswith("parameters invalid: ")
    assert "pattern" in plan.detail


def test_unknown_parameters_are_not_allowed() -> None:
    plan = decide(rule(params={"message": "x", "shell": "sh -c reboot"}))
    assert plan.reason is Reason.NOT_ALLOWED
    assert plan.detail == "parameters invalid: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("minutes_ago", "reason"),
    [(0, Reason.DEDUPLICATED), (9.99, Reason.DEDUPLICATED), (10, Reason.EXECUTED), (11, Reason.EXECUTED)],
)
def test_a_retry_is_deduplicated_until_retry_after_is_exactly_reached(minutes_ago: float, reason: Reason) -> None:
    last = AT - dt.timedelta(minutes=minutes_ago)
    plan = decide(rule(max_attempts=3, retry_after_minutes=10), incident(attempts=1, last=last))
    assert plan.reason is reason
    assert plan.target == "restart"


@pytest.mark.parametrize(
    ("attempts", "reason"), [(1, Reason.EXECUTED), (2, Reason.MAX_ATTEMPTS), (3, Reason.MAX_ATTEMPTS)]
)
def test_attempts_equal_to_max_attempts_stop_and_escalate(attempts: int, reason: Reason) -> None:
    last = AT - dt.timedelta(hours=1)
    plan = decide(rule(max_attempts=2), incident(attempts=attempts, last=last))
    assert plan.reason is reason
    if reason is Reason.MAX_ATTEMPTS:
        assert plan.detail == f"{attempts} of 2 attempts used"
        assert plan.escalates


def test_an_incident_never_attempted_is_due_whatever_its_record() -> None:
    assert decide(rule(), incident(attempts=0, last=None)).reason is Reason.EXECUTED


def test_a_recent_attempt_is_deduplicated_before_max_attempts_is_checked() -> None:
    plan = decide(rule(max_attempts=1), incident(attempts=1, last=AT - dt.timedelta(minutes=1)))
    assert plan.reason is Reason.DEDUPLICATED
    assert not plan.escalates


ALL_DAY = {"name": "all-day", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]}
SUNDAYS = {"name": "sundays", "time_intervals": [{"weekdays": ["sunday"]}]}


def test_inside_a_maintenance_window_nothing_runs_and_a_human_is_told() -> None:
    plan = decide(rule(), maintenance_windows=[SUNDAYS, ALL_DAY])
    assert plan.reason is Reason.MAINTENANCE
    assert plan.detail == "inside maintenance window all-day"
    assert plan.escalates


def test_outside_every_maintenance_window_the_action_is_due() -> None:
    assert decide(rule(), maintenance_windows=[SUNDAYS]).reason is Reason.EXECUTED


def test_max_attempts_wins_over_a_maintenance_window() -> None:
    plan = decide(rule(), incident(attempts=1, last=AT - dt.timedelta(hours=1)), maintenance_windows=[ALL_DAY])
    assert plan.reason is Reason.MAX_ATTEMPTS


def test_global_dry_run_plans_the_action_without_running_it() -> None:
    plan = decide(rule(params={"message": "{service}"}, label_params=SERVICE), dry_run=True)
    assert plan.reason is Reason.DRY_RUN
    assert plan.detail == "dry run: would run log"
    assert plan.bound == {"service": "api"}
    assert plan.target == "restart:api"
    assert plan.params is not None
    assert plan.escalates


def test_dry_run_of_one_rule_plans_without_running_it() -> None:
    assert decide(rule(dry_run=True)).reason is Reason.DRY_RUN


def test_a_maintenance_window_wins_over_dry_run() -> None:
    assert decide(rule(dry_run=True), maintenance_windows=[ALL_DAY]).reason is Reason.MAINTENANCE


def test_an_explicit_target_template_is_filled_from_the_bound_values() -> None:
    plan = decide(rule(label_params=SERVICE, target="svc/{service}"))
    assert plan.target == "svc/api"


# --- no_rule and denied ----------------------------------------------------------------------------------


def test_no_rule_escalates_with_no_rule_and_no_target() -> None:
    plan = no_rule()
    assert plan.reason is Reason.NO_RULE
    assert plan.rule is None
    assert plan.target is None
    assert plan.escalates


@pytest.mark.parametrize(
    ("denial", "reason", "detail"),
    [
        (Denial.CIRCUIT, Reason.CIRCUIT_OPEN, "circuit breaker of rule restart on restart:api is open"),
        (Denial.COOLDOWN, Reason.COOLDOWN, "restart:api was acted on less than 2.5 min ago"),
        (Denial.RATE, Reason.RATE_LIMITED, "rule restart is over its rate"),
        (Denial.BUDGET, Reason.RATE_LIMITED, "global hourly action budget exhausted"),
    ],
)
def test_each_refused_admission_names_its_reason_and_escalates(denial: Denial, reason: Reason, detail: str) -> None:
    plan = denied(rule(cooldown_minutes=2.5), "restart:api", denial)
    assert (plan.reason, plan.detail, plan.target) == (reason, detail, "restart:api")
    assert plan.params is None
    assert plan.escalates


def test_every_denial_has_a_reason() -> None:
    assert set(DENIALS) == set(Denial)


# --- matching_rules ----------------------------------------------------------------------------------


def test_matching_stops_at_the_first_matching_rule() -> None:
    first, second = rule(name="a"), rule(name="b")
    assert [r.name for r in matching_rules(config(first, second), LABELS)] == ["a"]


def test_continue_keeps_matching_after_a_rule_and_skips_the_ones_that_do_not_match() -> None:
    first = rule(name="a", **{"continue": True})
    other = rule(name="other", matchers=["alertname=Else"])
    second = rule(name="b", **{"continue": True})
    third, fourth = rule(name="c"), rule(name="d")
    assert [r.name for r in matching_rules(config(first, other, second, third, fourth), LABELS)] == ["a", "b", "c"]


def test_a_rule_that_does_not_match_does_not_stop_matching_even_without_continue() -> None:
    other = rule(name="other", matchers=["alertname=Else"])
    assert [r.name for r in matching_rules(config(other, rule(name="b")), LABELS)] == ["b"]


def test_no_rules_or_no_match_give_an_empty_list() -> None:
    assert matching_rules(config(), LABELS) == []
    assert matching_rules(config(rule()), {"alertname": "Other"}) == []


def test_every_matcher_of_a_rule_must_match() -> None:
    both = rule(matchers=["alertname=ServiceDown", 'service=~"gate.*"'])
    assert matching_rules(config(both), LABELS) == []
    assert matching_rules(config(both), LABELS | {"service": "gateway"}) == [both]


# --- bind ------------------------------------------------------------------------------------------


def test_bind_with_no_label_parameters_binds_nothing() -> None:
    assert bind(rule(), LABELS) == ({}, "")


def test_bind_maps_a_label_value_to_its_parameter_value() -> None:
    r = rule(label_params={"container": {"label": "service", "map": {"api": "mt-api-1"}}})
    assert bind(r, LABELS) == ({"container": "mt-api-1"}, "")
    assert bind(r, {"service": "mt-api-1"}) == (
        None,
        "label service='mt-api-1' is not in the allowlist of parameter 'container'",
    )


def test_bind_is_exact_no_prefix_case_or_whitespace_match() -> None:
    r = rule(label_params=SERVICE)
    for value in ("API", "api ", " api", "ap", "api\n", ""):
        bound, why = bind(r, {"service": value})
        assert bound is None
        assert "not in the allowlist" in why


def test_bind_fails_on_the_first_missing_label_of_several() -> None:
    r = rule(label_params=SERVICE | {"queue": {"label": "queue", "allowed": ["orders"]}})
    assert bind(r, LABELS) == (None, "label 'queue' is missing")
    assert bind(r, LABELS | {"queue": "orders"}) == ({"service": "api", "queue": "orders"}, "")


# --- escalation_delay and breaker_key -----------------------------------------------------------------


def test_a_rules_own_escalation_delay_wins_over_the_matrix() -> None:
    assert escalation_delay(config(), rule(escalate_after_minutes=3), LABELS) == dt.timedelta(minutes=3)


def test_the_escalation_matrix_picks_the_delay_by_priority() -> None:
    c = config(escalation={"after_minutes": {"P0": 1, "P1": 7}, "default_after_minutes": 99})
    assert escalation_delay(c, rule(), LABELS) == dt.timedelta(minutes=7)
    assert escalation_delay(c, None, {"priority": "P0"}) == dt.timedelta(minutes=1)


def test_an_unknown_or_missing_priority_takes_the_default_delay() -> None:
    c = config(escalation={"after_minutes": {"P0": 1}, "default_after_minutes": 99})
    assert escalation_delay(c, None, {"priority": "P9"}) == dt.timedelta(minutes=99)
    assert escalation_delay(c, rule(), {}) == dt.timedelta(minutes=99)


def test_breaker_key_is_one_per_rule_and_target() -> None:
    assert breaker_key(rule(), "restart:api") == "restart:restart:api"
    assert breaker_key(rule(name="a"), "t") != breaker_key(rule(name="b"), "t")


# --- Plan -----------------------------------------------------------------------------------------------


def test_describe_gives_the_explain_line_of_a_plan_with_a_rule() -> None:
    plan = decide(rule(label_params=SERVICE))
    assert plan.describe(alert()) == {
        "alertname": "ServiceDown",
        "fingerprint": "ab12",
        "status": "firing",
        "rule": "restart",
        "action": "log",
        "decision": "executed",
        "reason": "running log",
        "target": "restart:api",
        "escalates": False,
        "steps": [{"name": "act", "action": "log", "when": None, "verify": None, "approval": False}],
    }


def test_describe_of_no_rule_has_no_rule_or_action_and_escalates() -> None:
    line = no_rule().describe(alert())
    assert (line["rule"], line["action"], line["target"], line["decision"], line["escalates"]) == (
        None,
        None,
        None,
        "no_rule",
        True,
    )


@pytest.mark.parametrize("reason", list(Reason))
def test_a_plan_escalates_exactly_when_its_reason_is_escalating(reason: Reason) -> None:
    assert Plan(None, reason, "").escalates is (reason in ESCALATING)


# --- every reason is accounted for ---------------------------------------------------------------------

# How each reason is produced by a direct call above, or why it cannot be: only the runtime gives it.
COVERED_DIRECTLY = {
    Reason.EXECUTED: "test_a_due_action_is_executed_with_its_bound_parameters_and_target",
    Reason.ESCALATION_ONLY: "test_the_escalate_action_hands_the_alert_to_a_human_with_the_rule_as_target",
    Reason.DEDUPLICATED: "test_a_retry_is_deduplicated_until_retry_after_is_exactly_reached",
    Reason.RATE_LIMITED: "test_each_refused_admission_names_its_reason_and_escalates",
    Reason.COOLDOWN: "test_each_refused_admission_names_its_reason_and_escalates",
    Reason.MAX_ATTEMPTS: "test_attempts_equal_to_max_attempts_stop_and_escalate",
    Reason.NOT_ALLOWED: "test_a_missing_label_is_not_allowed_and_escalates",
    Reason.MAINTENANCE: "test_inside_a_maintenance_window_nothing_runs_and_a_human_is_told",
    Reason.DRY_RUN: "test_global_dry_run_plans_the_action_without_running_it",
    Reason.CIRCUIT_OPEN: "test_each_refused_admission_names_its_reason_and_escalates",
    Reason.NO_RULE: "test_no_rule_escalates_with_no_rule_and_no_target",
    Reason.IGNORED: "test_the_ignore_action_is_ignored_without_escalating",
    Reason.ALREADY_RESOLVED: "test_a_closed_incident_never_acts_again_even_when_everything_else_allows",
}
# RATE_LIMITED, COOLDOWN and CIRCUIT_OPEN come from the state backend's admission in the running system, through
# `denied` (called directly above). These two the pure functions never give:
ONLY_THROUGH_THE_RUNTIME = {
    Reason.STATE_UNAVAILABLE: "the state backend failed: runtime/incidents.py fails closed (tests/integration)",
    Reason.RESOLVED: "a resolved alert closes its incident: runtime/engine.py and runtime/incidents.py",
}


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_is_tested_directly_or_documented_as_runtime_only(reason: Reason) -> None:
    assert (reason in COVERED_DIRECTLY) != (reason in ONLY_THROUGH_THE_RUNTIME)
    if reason in COVERED_DIRECTLY:
        assert callable(globals().get(COVERED_DIRECTLY[reason])), COVERED_DIRECTLY[reason]
