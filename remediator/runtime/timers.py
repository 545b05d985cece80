"""The incidents' own timers (retries, verifications, approval deadlines, still-firing escalations) and the
decisions people take on steps waiting for them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

from common.logs import log_event
from remediator.config import RuleConfig
from remediator.runtime.incidents import alert_of
from remediator.runtime.journal import Journal
from remediator.runtime.playbook import (
    approval_matches,
    approval_still_for,
    gathered,
    note,
    parse_approval_id,
)
from remediator.state.base import Hold, StateUnavailableError
from remediator.state.incident import Incident, now

if TYPE_CHECKING:
    from remediator.runtime.engine import Engine

logger = logging.getLogger("remediator.runtime")
PRUNE_INTERVAL_SECONDS = 3600
APPROVED_STEP_SLACK_SECONDS = 10.0  # beyond its query and action deadlines, before an approved step counts as lost


def undecidable(held: Hold, nonce: str) -> str | None:
    """Why an approval cannot be decided under this hold (busy, unknown, not_pending, resolved, expired), or None
    when it can: busy when the incident stayed locked elsewhere for longer than an unrenewed lock lives."""
    incident = held.incident
    if not held.won:
        return "busy"
    if incident is None or not approval_matches(incident, nonce):
        return "unknown"
    if incident.approval.get("state") != "pending":
        return "not_pending"
    if incident.closed or held.resolving:
        return "resolved"
    if incident.approval_until is not None and incident.approval_until <= now():
        return "expired"
    return None


class Timers:
    """Runs the engine's incidents' timers, each under the incident's lock and re-read."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run_due(self) -> int:
        """Run the incidents' timers that are due: a retry runs the rule again, an expired still-firing deadline
        escalates; each under the incident's lock and re-read. Return how many ran."""
        ran = 0
        for found in await self.engine.state.due_timers(now()):
            rule = next((r for r in self.engine.config.rules if r.name == found.rule), None)
            async with self.engine.state.hold(found.key, self.engine.lock_seconds(rule)) as held:
                incident = held.incident if held.won else None
                due = incident.due_at() if incident is not None else None
                if incident is None or due is None or due > now() or held.resolving:
                    continue
                alert = alert_of(incident)
                journal = Journal(alert)
                held.save_on_release = incident
                if incident.approval_until is not None and incident.approval_until <= now():
                    await self._approval_expired(incident, journal)
                elif incident.verify_at is not None and incident.verify_at <= now() and rule is not None:
                    progress = await self.engine.playbooks.poll(held, incident, rule, journal)
                    await self.engine.runner.after(progress, incident, rule, journal)
                elif incident.retry_at is not None and incident.retry_at <= now() and incident.verify_until is not None:
                    # The playbook's run is still verifying: the retry (a new run) waits until it has ended.
                    incident.retry_at = incident.verify_until
                elif incident.retry_at is not None and incident.retry_at <= now():
                    incident.retry_at = None
                    journal.add("timer", found.rule, "retry_due", "the rule's retry is due (own timer)")
                    if rule is not None:
                        await self.engine.runner.fire(held, alert, rule, journal)
                elif not incident.escalated:
                    detail = f"{incident.alertname} still firing after remediation"
                    await self.engine.runner.escalate_once(incident, "still_firing", detail, journal)
                await self.engine.runner.flush(journal)
                ran += 1
        return ran

    async def _approval_expired(self, incident: Incident, journal: Journal) -> None:
        """An approval's timer fell due: nobody decided in time (the step never runs), or an approved step's own
        deadline passed with its outcome never recorded (the replica running it stopped): it is not run again.
        Either way a human is told, even when the incident was paged before (still firing)."""
        incident.approval_until = None
        name = incident.approval.get("name", "")
        state = incident.approval.get("state")
        if state == "approved":
            detail = "the approved step was interrupted (its replica stopped) before its outcome was recorded"
            note(incident, name, "approval_interrupted", f"{detail}: it is not run again; check what it did")
            journal.add("approval", incident.rule, "interrupted", f"{name}: {detail}")
            await self.engine.runner.page(incident, "approval_interrupted", gathered(incident), journal)
            return
        if state != "pending":
            return
        incident.approval["state"] = "expired"
        note(incident, name, "approval_expired", "nobody approved in time: the step did not run")
        journal.add("approval", incident.rule, "expired", f"{name}: nobody approved in time")
        await self.engine.runner.page(incident, "approval_expired", gathered(incident), journal)

    def _step_deadline(self, rule: RuleConfig, index: int) -> dt.timedelta:
        """How long an approved step may take (its `when` query, then its action) before its timer pages that it
        was interrupted."""
        step = rule.playbook[index]
        prometheus = self.engine.config.prometheus
        query = prometheus.timeout_seconds if prometheus is not None and getattr(step, "when", None) else 0.0
        return dt.timedelta(seconds=query + rule.timeout_seconds + APPROVED_STEP_SLACK_SECONDS)

    async def decide_approval(self, public_id: str, approve: bool, user: str) -> str:
        """Approve or deny a step waiting for a human; return what came of it: approved, denied, or why nothing
        changed (unknown, not_pending, expired, resolved, busy: locked elsewhere longer than a lock lives). Single
        use: the decision is durable before the step runs. Approving a step whose rule was removed or changed
        since it was asked runs nothing and pages (approval_void); approving re-checks that no resolve was accepted
        and that the step's `when` still holds, then runs it under every bound, with its own deadline; denying pages."""
        parsed = parse_approval_id(public_id)
        if parsed is None:
            return "unknown"
        key, nonce = parsed
        found = await self.engine.state.incident(key)
        if found is None or not approval_matches(found, nonce):
            return "unknown"  # a forged id takes no lock
        rule = next((r for r in self.engine.config.rules if r.name == found.rule), None)
        async with self.engine.state.hold(key, self.engine.lock_seconds(rule)) as held:
            why = undecidable(held, nonce)
            if why is not None or held.incident is None:  # (undecidable says "unknown" for no incident)
                return why or "unknown"
            incident = held.save_on_release = held.incident
            journal = Journal(alert_of(incident))
            name = incident.approval.get("name", "")
            by = user[:128]
            if approve and (rule is None or not approval_still_for(incident, rule)):
                why = "its rule was removed" if rule is None else "its step changed in a reload since it was asked"
                incident.approval.update({"state": "cancelled", "by": by, "at": now().isoformat()})
                incident.approval_until = None
                note(incident, name, "approval_void", f"approved by {by}, but {why}: the step did not run")
                journal.add("approval", incident.rule, "void", f"{name}: approved by {by}, but {why}")
                await self.engine.runner.page(incident, "approval_void", gathered(incident), journal)
                await self.engine.runner.flush(journal)
                return "not_pending"
            verdict = "approved" if approve else "denied"
            incident.approval.update({"state": verdict, "by": by, "at": now().isoformat()})
            incident.approval_until = None
            note(incident, name, verdict, f"by {by}")
            journal.add("approval", incident.rule, verdict, f"{name}: by {by}")
            if not approve or rule is None:
                await self.engine.runner.page(incident, "approval_denied", gathered(incident), journal)
                await self.engine.runner.flush(journal)
                return verdict
            step_index = int(incident.approval["step"])
            # The decision is on record before anything runs (a second approval, here or at another replica, finds
            # it decided), with the step's own deadline: a replica that dies running it leaves a timer that pages.
            incident.approval_until = now() + self._step_deadline(rule, step_index)
            await self.engine.state.save(incident, held)
            await self.engine.runner.flush(journal)
            progress = await self.engine.playbooks.run_from(
                step_index, held, incident, rule, journal, admitted=False, approved=True
            )
            if incident.approval.get("nonce") == nonce:
                incident.approval_until = None  # the step ended here (a later step may have asked anew)
            await self.engine.runner.after(progress, incident, rule, journal)
            await self.engine.runner.flush(journal)
            return verdict

    async def loop(self) -> None:
        """Every check interval: run the due timers, and prune what is past its retention once an hour."""
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.engine.config.escalation.check_interval_seconds)
            try:
                await self.run_due()
                await self.engine.state.catch_up()  # read copies the audit store missed (the Redis state)
                if time.monotonic() - last_prune > PRUNE_INTERVAL_SECONDS:
                    await self._prune()
                    last_prune = time.monotonic()
            except Exception as error:  # noqa: BLE001 - the loop is a process boundary; it must keep going
                log_event(logger, logging.ERROR, "timer_loop_failed", error=repr(error))

    async def _prune(self) -> None:
        cutoff = now() - dt.timedelta(days=self.engine.config.audit_retention_days)
        await self.engine.store.prune(cutoff)
        await self.engine.state.prune(cutoff)
        with contextlib.suppress(StateUnavailableError):
            await self.engine.state.forget_closed(now() - dt.timedelta(hours=self.engine.config.resolved_memory_hours))
