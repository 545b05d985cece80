"""The pure policy: which rules an alert matches, what they may do to which target, and what every outcome means.

Nothing here performs I/O. The state backend's atomic admission (circuit, cooldown, rate, budget) is the one
decision the runtime takes with the state; it is asked only when `precheck` says an action is otherwise due.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from remediator.actions.base import ActionParams, ActionRegistry, substitute
from remediator.config import ActStep, DiagnoseStep, RemediatorConfig, RuleConfig
from remediator.intake.payload import WebhookAlert
from remediator.policy.matchers import matches_all
from remediator.policy.windows import in_window
from remediator.state.base import Admission, Denial
from remediator.state.incident import Incident

IGNORE_ACTION = "ignore"


class Reason(enum.StrEnum):
    """Why an alert did or did not run an action (docs/configuration.md, decision table)."""

    EXECUTED = "executed"
    ESCALATION_ONLY = "escalation_only"
    DEDUPLICATED = "deduplicated"
    RATE_LIMITED = "rate_limited"
    COOLDOWN = "cooldown"
    MAX_ATTEMPTS = "max_attempts"
    NOT_ALLOWED = "not_allowed"
    MAINTENANCE = "maintenance"
    DRY_RUN = "dry_run"
    CIRCUIT_OPEN = "circuit_open"
    NO_RULE = "no_rule"
    IGNORED = "ignored"
    RESOLVED = "resolved"
    ALREADY_RESOLVED = "already_resolved"
    STATE_UNAVAILABLE = "state_unavailable"


# A firing alert whose decision is one of these goes to a human, once per incident: nothing is dropped.
ESCALATING = frozenset(
    {
        Reason.NO_RULE,
        Reason.ESCALATION_ONLY,
        Reason.NOT_ALLOWED,
        Reason.MAX_ATTEMPTS,
        Reason.MAINTENANCE,
        Reason.DRY_RUN,
        Reason.CIRCUIT_OPEN,
        Reason.RATE_LIMITED,
        Reason.COOLDOWN,
        Reason.STATE_UNAVAILABLE,
    }
)
ESCALATION_REASONS = (
    *sorted(ESCALATING),
    "action_failed",
    "approval_denied",
    "approval_expired",
    "approval_interrupted",
    "approval_needed",
    "approval_void",
    "playbook_exhausted",
    "still_firing",
)
DENIALS = {
    Denial.CIRCUIT: (Reason.CIRCUIT_OPEN, "circuit breaker of rule {rule} on {target} is open"),
    Denial.COOLDOWN: (Reason.COOLDOWN, "{target} was acted on less than {minutes:g} min ago"),
    Denial.RATE: (Reason.RATE_LIMITED, "rule {rule} is over its rate"),
    Denial.BUDGET: (Reason.RATE_LIMITED, "global hourly action budget exhausted"),
}


@dataclass(frozen=True)
class Plan:
    """The decision for one alert under one rule (or under none)."""

    rule: RuleConfig | None
    reason: Reason
    detail: str
    params: ActionParams | None = None
    bound: Mapping[str, str] | None = None
    target: str | None = None
    gathers: bool = False  # escalation_only: the rule's diagnose steps gather evidence for the page first

    @property
    def escalates(self) -> bool:
        """Whether this decision hands the incident to a human."""
        return self.reason in ESCALATING

    def describe(self, alert: WebhookAlert) -> dict[str, Any]:
        """Return the JSON line --explain prints."""
        return {
            "alertname": alert.name,
            "fingerprint": alert.fingerprint,
            "status": alert.status,
            "rule": self.rule.name if self.rule else None,
            "action": self.rule.action if self.rule else None,
            "decision": str(self.reason),
            "reason": self.detail,
            "target": self.target,
            "escalates": self.escalates,
            "steps": [step_line(step) for step in (self.rule.playbook if self.rule else ())],
        }


def step_line(step: ActStep | DiagnoseStep) -> dict[str, Any]:
    """One step of a plan as --explain prints it, with the preconditions it would check."""
    if isinstance(step, DiagnoseStep):
        return {"name": step.name, "diagnose": [probe.name for probe in step.probes]}
    return {
        "name": step.name,
        "action": step.action,
        "when": step.when,
        "verify": step.verify.query if step.verify else None,
        "approval": step.approval is not None,
    }


def matching_rules(config: RemediatorConfig, labels: Mapping[str, str]) -> list[RuleConfig]:
    """Return the rules an alert matches: the first, and the ones after it while `continue` is set."""
    matched: list[RuleConfig] = []
    for rule in config.rules:
        if matches_all(rule.parsed_matchers, labels):
            matched.append(rule)
            if not rule.continue_matching:
                break
    return matched


def bind(rule: RuleConfig, labels: Mapping[str, str]) -> tuple[dict[str, str] | None, str]:
    """Take declared label parameters from the alert, only when allowlisted; else (None, why)."""
    bound: dict[str, str] = {}
    for param, spec in rule.label_params.items():
        value = labels.get(spec.label)
        if value is None:
            return None, f"label {spec.label!r} is missing"
        resolved = spec.resolve(value)
        if resolved is None:
            return None, f"label {spec.label}={value!r} is not in the allowlist of parameter {param!r}"
        bound[param] = resolved
    return bound, ""


def escalation_delay(config: RemediatorConfig, rule: RuleConfig | None, labels: Mapping[str, str]) -> dt.timedelta:
    """How long a remediated alert may keep firing before a human is called (escalation matrix)."""
    if rule is not None and rule.escalate_after_minutes is not None:
        return dt.timedelta(minutes=rule.escalate_after_minutes)
    minutes = config.escalation.after_minutes.get(labels.get("priority", ""), config.escalation.default_after_minutes)
    return dt.timedelta(minutes=minutes)


def diagnoses_first(rule: RuleConfig) -> bool:
    """Whether the rule's playbook has a diagnose step before its first act step."""
    for step in rule.playbook:
        if isinstance(step, ActStep):
            return False
        if isinstance(step, DiagnoseStep):
            return True
    return False


def breaker_key(rule: RuleConfig, target: str) -> str:
    """The circuit breaker an action counts against: one per rule and target."""
    return f"{rule.name}:{target}"


def admission(config: RemediatorConfig, rule: RuleConfig, target: str, claimant: str) -> Admission:
    """A rule's claim on the limits for one action on one target: its breaker (whose half-open trial's lease
    outlasts the rule's deadline), the target's cooldown, the rule's bucket and the global budget."""
    return Admission(
        breaker_key(rule, target),
        config.circuit_breaker.open_minutes * 60,
        rule.name,
        rule.rate,
        target,
        rule.cooldown_minutes * 60,
        config.limits.actions_per_hour,
        claimant,
        trial_seconds=rule.timeout_seconds + 60,
    )


def already_resolved(rule: RuleConfig | None) -> Plan:
    """The decision for a late firing copy of an incident that resolved (or is resolving): it never acts."""
    return Plan(rule, Reason.ALREADY_RESOLVED, "this incident resolved already: a late firing copy never acts")


def no_rule() -> Plan:
    """The decision for a firing alert that no rule matches: a human is told."""
    return Plan(None, Reason.NO_RULE, "no rule matches: escalated to a human")


def denied(rule: RuleConfig, target: str, denial: Denial) -> Plan:
    """The decision for an action the state backend's admission refused."""
    reason, text = DENIALS[denial]
    detail = text.format(target=target, minutes=rule.cooldown_minutes, rule=rule.name)
    return Plan(rule, reason, detail, target=target)


def hand_over(rule: RuleConfig, labels: Mapping[str, str]) -> Plan:
    """The decision for a rule whose first act step escalates: a page at once, or, when diagnose steps come first,
    a page once they gathered their evidence (filled with the bound labels). No action runs, so no limit, window or
    dry run applies; a label that does not bind only means the page goes out at once, without evidence."""
    detail = f"rule {rule.name} hands this alert to a human"
    if not diagnoses_first(rule):
        return Plan(rule, Reason.ESCALATION_ONLY, detail, target=rule.name)
    bound, why = bind(rule, labels)
    if bound is None:
        return Plan(rule, Reason.ESCALATION_ONLY, f"{detail} (no evidence gathered: {why})", target=rule.name)
    detail = f"rule {rule.name} gathers evidence, then hands this alert to a human"
    return Plan(rule, Reason.ESCALATION_ONLY, detail, bound=bound, target=rule.target_for(bound), gathers=True)


def precheck(
    config: RemediatorConfig,
    registry: ActionRegistry,
    alert: WebhookAlert,
    rule: RuleConfig,
    incident: Incident | None,
    at: dt.datetime,
) -> Plan:
    """Decide everything but the limits: EXECUTED here means "due, if the admission lets it run"."""
    if incident is not None and incident.closed:
        return already_resolved(rule)
    if rule.action == IGNORE_ACTION:
        return Plan(rule, Reason.IGNORED, f"ignored by rule {rule.name} (configured)")
    action = registry.get(rule.action)
    if action.escalates:
        return hand_over(rule, alert.labels)
    bound, why = bind(rule, alert.labels)
    if bound is None:
        return Plan(rule, Reason.NOT_ALLOWED, why)
    target = rule.target_for(bound)
    try:
        params = action.params_model.model_validate(substitute(rule.params, bound))
    except ValidationError as error:
        return Plan(rule, Reason.NOT_ALLOWED, f"parameters invalid: {error.errors(include_url=False)[0]['msg']}")
    if incident is not None and (incident.verify_at is not None or incident.approval.get("state") == "pending"):
        detail = "the playbook is still running: a step is being verified or waits for a human"
        return Plan(rule, Reason.DEDUPLICATED, detail, target=target)
    retry_after = dt.timedelta(minutes=rule.retry_after_minutes)
    if incident is not None and incident.last_attempt_at is not None and at - incident.last_attempt_at < retry_after:
        return Plan(rule, Reason.DEDUPLICATED, "incident already remediated; retry not yet due", target=target)
    if incident is not None and incident.attempts >= rule.max_attempts:
        detail = f"{incident.attempts} of {rule.max_attempts} attempts used"
        return Plan(rule, Reason.MAX_ATTEMPTS, detail, target=target)
    for window in config.maintenance_windows:
        if in_window(window, at):
            return Plan(rule, Reason.MAINTENANCE, f"inside maintenance window {window.name}", target=target)
    if config.dry_run or rule.dry_run:
        return Plan(rule, Reason.DRY_RUN, "dry run: would run " + rule.action, params, bound, target)
    return Plan(rule, Reason.EXECUTED, "running " + rule.action, params, bound, target)
