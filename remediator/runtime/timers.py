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
from remediator.runtime.incidents import alert_of
from remediator.runtime.journal import Journal
from remediator.runtime.playbook import approval_matches, history_text, note, parse_approval_id
from remediator.state.base import StateUnavailableError
from remediator.state.incident import Incident, now

if TYPE_CHECKING:
    from remediator.runtime.engine import Engine

logger = logging.getLogger("remediator.runtime")
PRUNE_INTERVAL_SECONDS = 3600


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
                await self.engine.store.record(journal.take())
                ran += 1
        return ran

    async def _approval_expired(self, incident: Incident, journal: Journal) -> None:
        """Nobody decided in time: the step never runs and a human is told."""
        incident.approval_until = None
        if incident.approval.get("state") != "pending":
            return
        incident.approval["state"] = "expired"
        name = incident.approval.get("name", "")
        note(incident, name, "approval_expired", "nobody approved in time: the step did not run")
        journal.add("approval", incident.rule, "expired", f"{name}: nobody approved in time")
        await self.engine.runner.escalate_once(incident, "approval_expired", history_text(incident), journal)

    async def decide_approval(self, public_id: str, approve: bool, user: str) -> str:
        """Approve or deny a step waiting for a human; return what came of it: approved, denied, or why nothing
        changed (unknown, not_pending, expired, resolved). Approving re-checks that the alert still fires and the
        step's `when` still holds, then runs it under every bound; denying escalates. Single use."""
        parsed = parse_approval_id(public_id)
        if parsed is None:
            return "unknown"
        key, nonce = parsed
        found = await self.engine.state.incident(key)
        rule = next((r for r in self.engine.config.rules if found is not None and r.name == found.rule), None)
        async with self.engine.state.hold(key, self.engine.lock_seconds(rule)) as held:
            incident = held.incident if held.won else None
            if incident is None or rule is None or not approval_matches(incident, nonce):
                return "unknown"
            if incident.approval.get("state") != "pending":
                return "not_pending"
            if incident.closed or held.resolving:
                return "resolved"
            if incident.approval_until is not None and incident.approval_until <= now():
                return "expired"
            held.save_on_release = incident
            journal = Journal(alert_of(incident))
            step_index = int(incident.approval["step"])
            name = incident.approval.get("name", "")
            verdict = "approved" if approve else "denied"
            incident.approval.update({"state": verdict, "by": user[:128], "at": now().isoformat()})
            incident.approval_until = None
            note(incident, name, verdict, f"by {user[:128]}")
            journal.add("approval", rule.name, verdict, f"{name}: by {user[:128]}")
            if approve:
                progress = await self.engine.playbooks.run_from(
                    step_index, held, incident, rule, journal, admitted=False, approved=True
                )
                await self.engine.runner.after(progress, incident, rule, journal)
            else:
                await self.engine.runner.escalate_once(incident, "approval_denied", history_text(incident), journal)
            await self.engine.store.record(journal.take())
            return verdict

    async def loop(self) -> None:
        """Every check interval: run the due timers, and prune what is past its retention once an hour."""
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.engine.config.escalation.check_interval_seconds)
            try:
                await self.run_due()
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
