"""Deciding and acting: one alert at a time, every decision bounded, recorded and escalated when it must be."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from common.logs import log_event
from common.service import cancel_and_wait
from remediator.actions.base import (
    ActionParams,
    ActionRegistry,
    PermanentActionError,
    TransientActionError,
    substitute,
)
from remediator.config import RemediatorConfig, RuleConfig
from remediator.escalation.channels import Escalation
from remediator.escalation.outbox import Outbox
from remediator.intake.payload import WebhookAlert
from remediator.metrics import RemediatorMetrics
from remediator.policy.matchers import matches_all
from remediator.policy.windows import in_window
from remediator.runtime.alert_queue import AlertQueue
from remediator.runtime.gate import AcceptanceGate
from remediator.state.base import (
    Admission,
    AuditEntry,
    AuditStore,
    BreakerPolicy,
    Denial,
    Hold,
    StateBackend,
    StateUnavailableError,
)
from remediator.state.incident import Incident, now

logger = logging.getLogger("remediator")


class Reason(enum.StrEnum):
    """Why an alert did or did not run an action (docs/configuration.md, decision table)."""

    EXECUTED = "executed"
    DEDUPLICATED = "deduplicated"
    RATE_LIMITED = "rate_limited"
    COOLDOWN = "cooldown"
    MAX_ATTEMPTS = "max_attempts"
    NOT_ALLOWED = "not_allowed"
    MAINTENANCE = "maintenance"
    DRY_RUN = "dry_run"
    CIRCUIT_OPEN = "circuit_open"
    NO_RULE = "no_rule"
    RESOLVED = "resolved"
    STATE_UNAVAILABLE = "state_unavailable"


PRUNE_INTERVAL_SECONDS = 3600
# How long workers may hold back for webhook calls before they decide regardless (remediator/runtime/gate.py): a burst
# of Alertmanager's calls this long is answered at the webhook's pace (a storm's first notifications come
# together); remediation waits at most this much more, far below any alert's `for:` (minutes).
DECISION_DEFERRAL_SECONDS = 5.0
# A burst of webhook calls is still going on while the last call ended less than this long ago: the calls of
# one burst follow each other within a fraction of a millisecond (Alertmanager flushes its groups together).
WEBHOOK_QUIET_SECONDS = 0.005
ESCALATING = {Reason.NOT_ALLOWED, Reason.MAX_ATTEMPTS, Reason.MAINTENANCE, Reason.CIRCUIT_OPEN, Reason.RATE_LIMITED}
ESCALATION_REASONS = (*sorted(ESCALATING), "action_failed", "escalation_only", "still_firing", "state_unavailable")
# While the state backend is down, one escalation per incident per this many seconds (no shared dedup then).
UNAVAILABLE_ESCALATION_REPEAT_SECONDS = 300
DENIALS = {
    Denial.CIRCUIT: (Reason.CIRCUIT_OPEN, "circuit breaker of rule {rule} on {target} is open"),
    Denial.COOLDOWN: (Reason.COOLDOWN, "{target} was acted on less than {minutes:g} min ago"),
    Denial.RATE: (Reason.RATE_LIMITED, "rule {rule} is over its rate"),
    Denial.BUDGET: (Reason.RATE_LIMITED, "global hourly action budget exhausted"),
}


@dataclass(frozen=True)
class Plan:
    """The decision for one alert under one rule."""

    rule: RuleConfig | None
    reason: Reason
    detail: str
    params: ActionParams | None = None
    bound: Mapping[str, str] | None = None
    target: str | None = None

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
        }


@dataclass
class Journal:
    """One alert's audit entries, written together: before its action runs, and when its processing ends."""

    alert: WebhookAlert
    entries: list[AuditEntry] = field(default_factory=list)

    def add(self, event: str, rule: str | None = None, decision: str | None = None, detail: str = "") -> None:
        """Note one step (written at the next flush)."""
        self.entries.append(AuditEntry(now(), self.alert, event, rule, decision, detail))

    def take(self) -> list[AuditEntry]:
        """Return the entries not yet written, and forget them."""
        taken, self.entries = self.entries, []
        return taken


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


def breaker_key(rule: RuleConfig, target: str) -> str:
    """The circuit breaker an action counts against: one per rule and target."""
    return f"{rule.name}:{target}"


def escalation_delay(config: RemediatorConfig, rule: RuleConfig | None, labels: Mapping[str, str]) -> dt.timedelta:
    """How long a remediated alert may keep firing before a human is called (escalation matrix)."""
    if rule is not None and rule.escalate_after_minutes is not None:
        return dt.timedelta(minutes=rule.escalate_after_minutes)
    minutes = config.escalation.after_minutes.get(labels.get("priority", ""), config.escalation.default_after_minutes)
    return dt.timedelta(minutes=minutes)


class Engine:
    """Processes alerts from the durable inbox with bounded workers."""

    def __init__(
        self,
        config: RemediatorConfig,
        registry: ActionRegistry,
        store: AuditStore,
        state: StateBackend,
        outbox: Outbox,
        metrics: RemediatorMetrics,
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.state = state
        self.outbox = outbox
        self.metrics = metrics
        self.queue = AlertQueue()
        self._unavailable_escalations: dict[str, float] = {}
        self._slots = asyncio.Semaphore(config.limits.concurrency)
        self._tasks: list[asyncio.Task[None]] = []
        self.gate = AcceptanceGate(DECISION_DEFERRAL_SECONDS, WEBHOOK_QUIET_SECONDS)

    @property
    def breaker_policy(self) -> BreakerPolicy:
        """The circuit breakers' bounds in force."""
        return BreakerPolicy(self.config.circuit_breaker.failures, self.config.circuit_breaker.open_minutes * 60)

    def lock_seconds(self, rule: RuleConfig | None) -> float:
        """How long an incident's lock outlives a replica that died holding it."""
        margin = self.config.state_redis.lock_margin_seconds if self.config.state_redis is not None else 60.0
        return (rule.timeout_seconds if rule is not None else 0) + margin

    async def plan(self, alert: WebhookAlert, rule: RuleConfig, incident: Incident | None, consume: bool) -> Plan:
        """Decide what to do for a firing alert under one rule; with consume=False no limit is spent."""
        bound, why = bind(rule, alert.labels)
        if bound is None:
            return Plan(rule, Reason.NOT_ALLOWED, why)
        target = rule.target_for(bound)
        action = self.registry.get(rule.action)
        try:
            params = action.params_model.model_validate(substitute(rule.params, bound))
        except ValidationError as error:
            return Plan(rule, Reason.NOT_ALLOWED, f"parameters invalid: {error.errors(include_url=False)[0]['msg']}")
        at = now()
        # A resend inside the retry window (Alertmanager's repeat, or its HA peer) is a duplicate; only once
        # the retry falls due does an exhausted incident count as not fixed (max_attempts, escalated).
        if (
            incident is not None
            and incident.last_attempt_at is not None
            and at - incident.last_attempt_at < dt.timedelta(minutes=rule.retry_after_minutes)
        ):
            return Plan(rule, Reason.DEDUPLICATED, "incident already remediated; retry not yet due", target=target)
        if incident is not None and incident.attempts >= rule.max_attempts:
            return Plan(
                rule, Reason.MAX_ATTEMPTS, f"{incident.attempts} of {rule.max_attempts} attempts used", target=target
            )
        for window in self.config.maintenance_windows:
            if in_window(window, at):
                return Plan(rule, Reason.MAINTENANCE, f"inside maintenance window {window.name}", target=target)
        if self.config.dry_run or rule.dry_run:
            return Plan(rule, Reason.DRY_RUN, "dry run: would run " + rule.action, params, bound, target)
        admission = Admission(
            breaker_key(rule, target),
            self.breaker_policy.open_seconds,
            rule.name,
            rule.rate,
            target,
            rule.cooldown_minutes * 60,
            self.config.limits.actions_per_hour,
            alert.incident_key,
        )
        # Circuit, cooldown, rate and budget are checked (and taken) in one atomic step of the state backend.
        denial = await self.state.admit(admission, consume)
        if denial is not None:
            reason, text = DENIALS[denial]
            return Plan(
                rule,
                reason,
                text.format(target=target, minutes=rule.cooldown_minutes, rule=rule.name, action=rule.action),
                target=target,
            )
        return Plan(rule, Reason.EXECUTED, "running " + rule.action, params, bound, target)

    async def explain(self, alert: WebhookAlert) -> list[Plan]:
        """Decide for an alert without side effects (for --explain)."""
        if alert.status == "resolved":
            return [Plan(None, Reason.RESOLVED, "resolved alerts never act; the incident is closed")]
        rules = matching_rules(self.config, alert.labels)
        if not rules:
            return [Plan(None, Reason.NO_RULE, "no rule matches")]
        return [await self.plan(alert, rule, None, consume=False) for rule in rules]

    def prepare_metrics(self) -> None:
        """Create the series of every configured rule, action, reason and channel at 0 (also after a reload)."""
        self.metrics.prepare(
            [(rule.name, rule.action) for rule in self.config.rules],
            [reason for reason in Reason if reason is not Reason.NO_RULE],
            ESCALATION_REASONS,
            self.outbox.channel_names(),
        )
        self.metrics.decisions.labels("", Reason.NO_RULE)

    async def start(self) -> None:
        """Resume unfinished alerts of the inbox, then start the workers and the escalation loop."""
        self.prepare_metrics()
        await self.store.open()
        await self.state.open()
        await self.outbox.start()
        self.queue.put_resumed(await self.store.pending())
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.config.limits.concurrency * 2)]
        self._tasks.append(asyncio.create_task(self._escalation_loop()))

    async def reconfigure(self, config: RemediatorConfig, registry: ActionRegistry) -> None:
        """Apply a reloaded configuration: rules, bounds and channels change; all state is kept."""
        old_registry = self.registry
        self.config = config
        self.registry = registry
        self.outbox.reconfigure(config.escalation)
        self.prepare_metrics()
        await old_registry.close()

    async def stop(self) -> None:
        """Stop workers (unfinished inbox entries stay pending for the next start)."""
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def has_room(self, count: int) -> bool:
        """Whether `count` more alerts fit in the work queue."""
        return self.queue.qsize() + count <= self.config.limits.queue_size

    def accepting(self) -> contextlib.AbstractContextManager[None]:
        """Mark one webhook call in progress: workers let it finish before deciding, within the gate's bounds."""
        return self.gate.call()

    async def _worker(self) -> None:
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A client library swallowed the stop's cancellation mid-alert (seen with the Redis and
                # PostgreSQL backends under load): honour it here, or the shutdown waits on this worker for ever.
                raise asyncio.CancelledError
            delivery, alert = await self.queue.get()
            try:
                # Taken, then held while a webhook call is in progress (the gate bounds how long); it stays
                # pending in the inbox until its record is written, so a stop meanwhile loses nothing.
                await self.gate.turn(self.queue.qsize() + 1, self.config.limits.queue_size)
                self.metrics.queue_depth.set(self.queue.qsize())
                journal = Journal(alert, [AuditEntry(delivery.received_at, alert, "received")])
                await self.process(alert, journal)
                await self.store.record(journal.take(), done=delivery)
            except Exception as error:  # noqa: BLE001 - a worker must survive one bad alert; it stays pending
                log_event(logger, logging.ERROR, "process_failed", incident=alert.incident_key, error=repr(error))
            finally:
                self.queue.task_done()
                self.gate.decided(self.queue.qsize())

    async def process(self, alert: WebhookAlert, journal: Journal) -> list[Plan]:
        """Decide and act for one alert, noting every step in the journal (written before any action runs)."""
        rules = matching_rules(self.config, alert.labels)
        if not rules:
            plan = Plan(None, Reason.NO_RULE, "no rule matches")
            self._record(journal, plan)
            return [plan]
        plans = []
        for rule in rules:
            key = f"{alert.incident_key}#{rule.name}"
            try:
                plans.append(await self._process_locked(alert, rule, key, journal))
            except StateUnavailableError as error:
                plans.append(await self._fail_closed(alert, rule, key, str(error), journal))
        return plans

    async def _process_locked(self, alert: WebhookAlert, rule: RuleConfig, key: str, journal: Journal) -> Plan:
        async with self.state.hold(key, self.lock_seconds(rule)) as held:
            if not held.won:
                plan = Plan(rule, Reason.DEDUPLICATED, "another replica held this incident past its lock's lifetime")
                self._record(journal, plan)
                return plan
            return await self._process_rule(alert, rule, key, journal, held)

    async def _fail_closed(self, alert: WebhookAlert, rule: RuleConfig, key: str, why: str, journal: Journal) -> Plan:
        """The state backend is unreachable: never act; escalate a firing alert (at most every few minutes)."""
        plan = Plan(rule, Reason.STATE_UNAVAILABLE, f"failing closed, no action: {why}")
        self._record(journal, plan)
        if alert.status == "firing":
            current = time.monotonic()
            last = self._unavailable_escalations.get(key)
            if last is None or current - last > UNAVAILABLE_ESCALATION_REPEAT_SECONDS:
                # Forget what is past the repeat window, so a long outage does not grow this without bound.
                self._unavailable_escalations = {
                    k: t
                    for k, t in self._unavailable_escalations.items()
                    if current - t <= UNAVAILABLE_ESCALATION_REPEAT_SECONDS
                }
                self._unavailable_escalations[key] = current
                await self._escalate(alert.labels, key, "state_unavailable", why, resolved=False, journal=journal)
        return plan

    async def _process_rule(
        self, alert: WebhookAlert, rule: RuleConfig, key: str, journal: Journal, held: Hold
    ) -> Plan:
        incident = held.incident
        if alert.status == "resolved":
            plan = Plan(rule, Reason.RESOLVED, "alert resolved: incident closed")
            self._record(journal, plan)
            if incident is not None and incident.state == "open":
                incident.state = "closed"
                incident.escalate_at = None
                held.save_on_release = incident
                if incident.escalated:
                    # Same labels as the escalation (its reason included), so Alertmanager resolves that alert.
                    reason = incident.escalation_reason or "resolved"
                    await self._escalate(
                        incident.labels, key, reason, "the alert resolved", resolved=True, journal=journal
                    )
            return plan
        if incident is None:
            incident = Incident(key, alert.name, dict(alert.labels), rule.name, "open", 0, None, None, False, None)
        elif incident.state == "closed":
            incident.state = "open"
        plan = await self.plan(alert, rule, incident, consume=True)
        self._record(journal, plan)
        if incident.escalate_at is None:
            incident.escalate_at = now() + escalation_delay(self.config, rule, alert.labels)
        if plan.reason is Reason.EXECUTED:
            # The attempt is claimed before the action runs: a replica killed mid-action leaves it counted,
            # so neither a restart nor another replica runs it again before the rule's retry is due.
            incident.attempts += 1
            incident.last_attempt_at = now()
            incident.escalate_at = now() + escalation_delay(self.config, rule, alert.labels)
            await self.state.save(incident)
            await self.store.record(journal.take())  # the decision is on record before the action runs
            ok, detail = await self._execute(alert, rule, plan, journal)
            if not ok:
                await self._escalate_incident(incident, journal, "action_failed", detail)
            elif self.registry.get(rule.action).escalates:
                await self._escalate_incident(incident, journal, "escalation_only", detail)
        else:
            escalate = plan.reason in ESCALATING and not incident.escalated
            if escalate:  # marked in the same save as the decision: one write, and never sent twice
                incident.escalated = True
                incident.escalation_reason = str(plan.reason)
            held.save_on_release = incident
            if escalate:
                await self._escalate(
                    incident.labels, key, str(plan.reason), plan.detail, resolved=False, journal=journal
                )
        return plan

    async def _execute(self, alert: WebhookAlert, rule: RuleConfig, plan: Plan, journal: Journal) -> tuple[bool, str]:
        action = self.registry.get(rule.action)
        assert plan.params is not None
        assert plan.bound is not None
        assert plan.target is not None
        started = time.perf_counter()
        async with self._slots:
            self.metrics.in_flight.inc()
            try:
                async with asyncio.timeout(rule.timeout_seconds):
                    async for attempt in AsyncRetrying(
                        stop=stop_after_attempt(rule.retries + 1),
                        wait=wait_exponential(multiplier=0.5, max=10),
                        retry=retry_if_exception_type(TransientActionError),
                        reraise=True,
                    ):
                        with attempt:
                            result = await action.run(plan.params, plan.bound)
                ok, detail = True, result.detail
            except (TransientActionError, PermanentActionError, TimeoutError) as error:
                ok, detail = False, f"{type(error).__name__}: {error}"
            finally:
                self.metrics.in_flight.dec()
        self.metrics.actions.labels(rule.action, "success" if ok else "failure").inc()
        self.metrics.action_duration.labels(rule.action).observe(time.perf_counter() - started)
        journal.add("action", rule.name, "success" if ok else "failure", detail)
        log_event(
            logger, logging.INFO, "action_done", incident=alert.incident_key, rule=rule.name, ok=ok, detail=detail
        )
        is_open = await self.state.record_outcome(breaker_key(rule, plan.target), ok, self.breaker_policy)
        self.metrics.circuit_open.labels(rule.name, plan.target).set(1 if is_open else 0)
        return ok, detail

    def _record(self, journal: Journal, plan: Plan) -> None:
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

    async def _escalate_incident(self, incident: Incident, journal: Journal | None, reason: str, detail: str) -> None:
        if incident.escalated:
            return
        incident.escalated = True
        incident.escalation_reason = reason
        await self.state.save(incident)
        await self._escalate(incident.labels, incident.key, reason, detail, resolved=False, journal=journal)

    async def _escalate(
        self,
        labels: Mapping[str, str],
        key: str,
        reason: str,
        detail: str,
        *,
        resolved: bool,
        journal: Journal | None,
    ) -> None:
        await self.outbox.enqueue(Escalation(key, labels, reason, detail, resolved))
        failed: list[str] = []
        if not resolved:
            self.metrics.escalations.labels(reason).inc()
        if journal is not None:
            event = "escalation_resolved" if resolved else "escalated"
            journal.add(event, None, reason, detail + (f" (failed: {', '.join(failed)})" if failed else ""))
        log_event(
            logger,
            logging.WARNING,
            "escalated",
            incident=key,
            reason=reason,
            resolved=resolved,
            failed=",".join(failed),
        )

    async def escalate_due(self) -> int:
        """Escalate open incidents still firing past their escalation time; return how many."""
        escalated = 0
        for found in await self.state.due_escalations(now()):
            # Under the incident's lock and re-read: a replica or a resolve may have got there first.
            async with self.state.hold(found.key, self.lock_seconds(None)) as held:
                incident = held.incident if held.won else None
                if (
                    incident is None
                    or incident.state != "open"
                    or incident.escalated
                    or incident.escalate_at is None
                    or incident.escalate_at > now()
                ):
                    continue
                await self._escalate_incident(
                    incident, None, "still_firing", f"{incident.alertname} still firing after remediation"
                )
                escalated += 1
        return escalated

    async def _escalation_loop(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.config.escalation.check_interval_seconds)
            try:
                await self.escalate_due()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_SECONDS:
                    cutoff = now() - dt.timedelta(days=self.config.audit_retention_days)
                    await self.store.prune(cutoff)
                    await self.state.prune(cutoff)
                    last_prune = time.monotonic()
            except Exception as error:  # noqa: BLE001 - the loop is a process boundary; it must keep going
                log_event(logger, logging.ERROR, "escalation_loop_failed", error=repr(error))
