"""One incident under its lock: decide, claim the attempt, act, set its timers, escalate, or close it."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common.logs import log_event
from remediator.actions.base import ActionRegistry
from remediator.config import ActStep, RemediatorConfig, RuleConfig
from remediator.escalation.channels import Escalation
from remediator.escalation.outbox import Outbox
from remediator.intake.payload import WebhookAlert
from remediator.metrics import RemediatorMetrics
from remediator.policy.decide import (
    Plan,
    Reason,
    admission,
    already_resolved,
    denied,
    escalation_delay,
    no_rule,
    precheck,
)
from remediator.runtime.acting import Actor
from remediator.runtime.durable import until_recorded
from remediator.runtime.journal import Journal
from remediator.runtime.playbook import Playbooks, Progress, approval_id, gathered
from remediator.state.base import Admission, AuditStore, Delivery, Hold, StateBackend
from remediator.state.incident import OPEN, Incident, now

logger = logging.getLogger("remediator.runtime")
# While the state backend is down, one escalation per incident per this many seconds (no shared dedup then).
UNAVAILABLE_ESCALATION_REPEAT_SECONDS = 300


class ResolveDeferredError(Exception):
    """A resolve could not take its incident's lock in time: it is processed again later, never dropped."""


def incident_key(alert: WebhookAlert, rule: RuleConfig | None) -> str:
    """The key of an alert's incident under a rule (under no rule: the alert's own, for `no_rule`)."""
    return f"{alert.incident_key}#{rule.name if rule is not None else ''}"


def alert_of(incident: Incident) -> WebhookAlert:
    """The firing alert an incident was opened for, rebuilt from its key and labels (for its own timers)."""
    fingerprint, _, rest = incident.key.partition("@")
    starts, _, _ = rest.rpartition("#")
    return WebhookAlert("firing", incident.labels, dt.datetime.fromisoformat(starts), fingerprint)


def asks_first(rule: RuleConfig) -> bool:
    """Whether the rule's first act step waits for a human's approval before it runs."""
    first = next((step for step in rule.playbook if isinstance(step, ActStep)), None)
    return first is not None and first.approval is not None


@dataclass
class IncidentRunner:
    """Takes one alert under one rule (or none) to its end: a remediation, an escalation, or a recorded ignore."""

    config: Callable[[], RemediatorConfig]
    registry: Callable[[], ActionRegistry]
    store: AuditStore
    state: StateBackend
    outbox: Outbox
    actor: Actor
    playbooks: Playbooks
    metrics: RemediatorMetrics
    _unavailable: dict[str, float] = field(default_factory=dict)

    async def flush(self, journal: Journal, done: Delivery | None = None) -> None:
        """Write the journal's new entries (and with `done`, mark the alert processed), waiting for the audit store
        as long as it refuses (remediator/runtime/durable.py): an acknowledged alert's record is never dropped."""
        entries = journal.take()
        failed = self.metrics.audit_write_retries.inc
        await until_recorded(lambda: self.store.record(entries, done=done), "journal", failed)

    def record(self, journal: Journal, plan: Plan) -> None:
        """Count, journal and log one decision."""
        rule = plan.rule.name if plan.rule else ""
        self.metrics.decisions.labels(rule, str(plan.reason)).inc()
        journal.add("decision", rule or None, str(plan.reason), plan.detail)
        log_event(
            logger,
            logging.INFO,
            "decision",
            incident=journal.alert.incident_key,
            rule=rule,
            decision=plan.reason,
            detail=plan.detail,
        )

    async def resolve(self, held: Hold, alert: WebhookAlert, rule: RuleConfig | None, journal: Journal) -> None:
        """Close the incident for good (a tombstone even when it was never seen firing), cancel its timers, and
        resolve its page."""
        self.record(journal, Plan(rule, Reason.RESOLVED, "alert resolved: incident closed"))
        incident = held.incident or self.new_incident(alert, rule)
        if incident.closed:
            return
        incident.close()
        held.save_on_release = incident
        if incident.escalated or incident.approval:  # a page went out (an approval's page is one too): resolve it
            reason = incident.escalation_reason or ("approval_needed" if incident.approval else "resolved")
            await self.escalate(incident.key, incident.labels, reason, "the alert resolved", journal, resolved=True)

    def new_incident(self, alert: WebhookAlert, rule: RuleConfig | None) -> Incident:
        """A fresh open incident for the alert under the rule."""
        name = rule.name if rule is not None else None
        return Incident(
            incident_key(alert, rule), alert.name, dict(alert.labels), name, OPEN, 0, None, None, False, None
        )

    async def fire(self, held: Hold, alert: WebhookAlert, rule: RuleConfig | None, journal: Journal) -> Plan:
        """Decide for a firing alert and carry the decision out."""
        incident = held.incident or self.new_incident(alert, rule)
        config = self.config()
        at = now()
        if held.resolving and not incident.closed:
            plan = already_resolved(rule)
        elif rule is None:
            plan = no_rule() if not incident.closed else already_resolved(None)
        else:
            plan = precheck(config, self.registry(), alert, rule, incident, at)
            if plan.reason is Reason.EXECUTED and plan.target is not None:
                # A first step that waits for a human is only checked now: it spends the limits when it runs.
                consume = not asks_first(rule)
                denial = await self.state.admit(self.admission(rule, plan.target, alert), consume=consume)
                if denial is not None:
                    plan = denied(rule, plan.target, denial)
        self.record(journal, plan)
        if plan.reason in {Reason.ALREADY_RESOLVED, Reason.DEDUPLICATED, Reason.IGNORED}:
            return plan
        if incident.escalate_at is None:
            incident.escalate_at = at + escalation_delay(config, rule, alert.labels)
        held.save_on_release = incident
        if plan.reason is Reason.EXECUTED and rule is not None:
            await self.act(held, incident, rule, plan, journal)
        elif plan.gathers and rule is not None and not incident.escalated:
            await self.gather_then_page(held, incident, rule, plan, journal)
        elif plan.escalates:
            await self.escalate_once(incident, str(plan.reason), plan.detail, journal)
        return plan

    def admission(self, rule: RuleConfig, target: str, alert: WebhookAlert) -> Admission:
        """The rule's claim on the limits for one action on one target."""
        return admission(self.config(), rule, target, alert.incident_key)

    async def act(self, held: Hold, incident: Incident, rule: RuleConfig, plan: Plan, journal: Journal) -> None:
        """Claim the attempt durably (fenced: only while the lock holds), then run the playbook from its first
        step; when every step is spent, hand the incident to a human with what was tried and seen."""
        at = now()
        incident.attempts += 1
        incident.last_attempt_at = at
        incident.escalate_at = at + escalation_delay(self.config(), rule, incident.labels)
        more = incident.attempts < rule.max_attempts
        incident.retry_at = at + dt.timedelta(minutes=rule.retry_after_minutes) if more else None
        incident.bound = dict(plan.bound or {})
        incident.step, incident.history = 0, []
        # The claim is on record before the action runs: a replica killed mid-action leaves it counted, so neither
        # a restart nor another replica runs it again before its retry timer.
        await self.state.save(incident, held)
        await self.flush(journal)
        progress = await self.playbooks.run_from(0, held, incident, rule, journal, admitted=not asks_first(rule))
        await self.after(progress, incident, rule, journal)

    async def gather_then_page(
        self, held: Hold, incident: Incident, rule: RuleConfig, plan: Plan, journal: Journal
    ) -> None:
        """Run the diagnose steps before the rule's escalate step, then page once with what they found. No action
        runs, so nothing is claimed against the limits and no attempt is counted."""
        incident.bound = dict(plan.bound or {})
        incident.step, incident.history = 0, []
        await self.state.save(incident, held)
        await self.flush(journal)
        progress = await self.playbooks.run_from(0, held, incident, rule, journal, admitted=False)
        await self.after(progress, incident, rule, journal)

    async def after(self, progress: Progress, incident: Incident, rule: RuleConfig, journal: Journal) -> None:
        """Carry out where a playbook's turn left it: page for an approval, a human once an escalate step is reached
        (with what was gathered) or once every step is spent."""
        if progress is Progress.APPROVAL:
            await self.ask_approval(incident, journal)
        elif progress is Progress.HANDOVER:
            await self.escalate_once(incident, str(Reason.ESCALATION_ONLY), gathered(incident), journal)
        elif progress is Progress.SPENT:
            await self.exhausted(incident, rule, journal)

    async def ask_approval(self, incident: Incident, journal: Journal) -> None:
        """Page a human with the waiting step, its approve and deny links, and what was tried so far."""
        pending = incident.approval
        public = approval_id(incident.key, pending["nonce"])
        base = self.config().external_url
        links = (
            f"; approve: {str(base).rstrip('/')}/approvals/{public}?decision=approve"
            f" deny: {str(base).rstrip('/')}/approvals/{public}?decision=deny"
            if base is not None
            else f"; approval id {public} (POST /api/v1/approvals/{{id}})"
        )
        detail = f"step {pending['name']} ({pending['action']}) waits for approval until {pending['until']}{links}"
        if incident.history or incident.evidence:
            detail += "; so far: " + gathered(incident)
        await self.escalate(incident.key, incident.labels, "approval_needed", detail, journal, resolved=False)

    async def exhausted(self, incident: Incident, rule: RuleConfig, journal: Journal) -> None:
        """Every step is spent: a human gets the incident, with the step history and the evidence. A run whose
        steps ran but were not verified, with a retry still to come, pages only if that retry does not help."""
        last = incident.history[-1]["outcome"] if incident.history else ""
        if last == "not_verified" and incident.retry_at is not None:
            journal.add(
                "step", rule.name, "retry_pending", f"not verified: the playbook runs again at {incident.retry_at}"
            )
            return
        reason = "action_failed" if len(rule.playbook) == 1 and last != "not_verified" else "playbook_exhausted"
        await self.escalate_once(incident, reason, gathered(incident), journal)

    async def page(self, incident: Incident, reason: str, detail: str, journal: Journal | None) -> None:
        """Hand the incident to a human for an event that happens once per approval (denied, expired, void,
        interrupted): paged even when the incident was paged before, under the same dedup key."""
        incident.escalated = True
        incident.escalation_reason = reason
        await self.escalate(incident.key, incident.labels, reason, detail, journal, resolved=False)

    async def escalate_once(self, incident: Incident, reason: str, detail: str, journal: Journal | None) -> None:
        """Hand the incident to a human, unless it already was (one page per incident)."""
        if incident.escalated:
            return
        # Owed from now: a replica stopped while the page waits for the audit store saves the incident so, and its
        # still-firing timer (here after a restart, or at another replica) pages instead.
        incident.escalate_at = now()
        await self.escalate(incident.key, incident.labels, reason, detail, journal, resolved=False)
        incident.escalated = True
        incident.escalation_reason = reason

    async def escalate(
        self,
        key: str,
        labels: Mapping[str, str],
        reason: str,
        detail: str,
        journal: Journal | None,
        *,
        resolved: bool,
    ) -> None:
        """Put one escalation (or its resolve) in the outbox; its delivery is the sender's work."""
        escalation = Escalation(key, labels, reason, detail, resolved)
        await until_recorded(
            lambda: self.outbox.enqueue(escalation), "escalation", self.metrics.audit_write_retries.inc
        )
        if not resolved:
            self.metrics.escalations.labels(reason).inc()
        if journal is not None:
            journal.add("escalation_resolved" if resolved else "escalated", None, reason, detail)
        log_event(logger, logging.WARNING, "escalated", incident=key, reason=reason, resolved=resolved)

    async def fail_closed(self, alert: WebhookAlert, rule: RuleConfig | None, why: str, journal: Journal) -> Plan:
        """The state backend is unreachable: never act; escalate a firing alert (at most every few minutes)."""
        plan = Plan(rule, Reason.STATE_UNAVAILABLE, f"failing closed, no action: {why}")
        self.record(journal, plan)
        key = incident_key(alert, rule)
        if alert.status == "firing":
            current = time.monotonic()
            last = self._unavailable.get(key)
            if last is None or current - last > UNAVAILABLE_ESCALATION_REPEAT_SECONDS:
                self._unavailable = {
                    k: t for k, t in self._unavailable.items() if current - t <= UNAVAILABLE_ESCALATION_REPEAT_SECONDS
                }
                self._unavailable[key] = current
                await self.escalate(key, alert.labels, "state_unavailable", why, journal, resolved=False)
        return plan
