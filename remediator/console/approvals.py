"""The console's approvals: the steps waiting for a human (what each would do, why, its evidence and deadline),
the confirmation page an approval link opens, and the one POST of the console that can reach an action: approving
or denying a pending step through Engine.decide_approval, recorded with the session's user."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from remediator.actions.base import substitute
from remediator.api.read import READ_ACCESS
from remediator.api.views import ReadableStore, awaits_approval, incident_json, target_of
from remediator.audit.reads import IncidentQuery, IncidentRow
from remediator.config import ActStep, RemediatorConfig
from remediator.console.sessions import Session
from remediator.runtime.playbook import approval_id, approval_matches, parse_approval_id
from remediator.state.base import StateBackend
from remediator.state.incident import Incident, now

SCAN_BATCH = 500
SCAN_MAX = 5000  # open incidents looked through for pending approvals on one page view
SECRET_KEY = re.compile(r"token|password|passwd|secret|authorization|api_?key|headers|credential", re.IGNORECASE)
DECISIONS = ("approve", "deny")
# What Engine.decide_approval's answers mean, for the person who clicked.
RESULTS = {
    "approved": "Approved: the step ran under every bound; the timeline shows what it did.",
    "denied": "Denied: the step will not run, and the incident was escalated with the reason approval_denied.",
    "unknown": "This approval link is not one the remediator gave (forged or mistyped): nothing changed.",
    "not_pending": "This approval was already decided, cancelled or has expired: nothing changed.",
    "expired": "This approval's deadline has passed: nothing changed (the incident escalates by itself).",
    "resolved": "The incident has resolved: nothing changed.",
    "busy": "The incident is being worked on elsewhere (its lock is held): nothing changed; try again in a moment.",
}


def scrubbed(params: Mapping[str, Any]) -> dict[str, Any]:
    """A step's parameters as shown to people: values under secret-looking keys replaced."""
    shown: dict[str, Any] = {}
    for name, value in params.items():
        if SECRET_KEY.search(name):
            shown[name] = "(hidden)"
        elif isinstance(value, Mapping):
            shown[name] = scrubbed(value)
        else:
            shown[name] = value
    return shown


def pending_view(config: RemediatorConfig, row: IncidentRow) -> dict[str, Any] | None:
    """What a pending approval would do and why (None when the incident has no pending approval): the step, its
    action, target and parameters, the incident, its step history and evidence, the deadline and the approval id."""
    incident = row.incident
    approval = incident.approval
    if not awaits_approval(incident) or not approval.get("nonce"):
        return None  # none pending, or its deadline passed (the timers expire it and page)
    rule = next((r for r in config.rules if r.name == incident.rule), None)
    step: ActStep | None = None
    if rule is not None:
        index = int(approval.get("step", "-1") or -1)
        found = rule.playbook[index] if 0 <= index < len(rule.playbook) else None
        step = found if isinstance(found, ActStep) else None
    target = target_of(config, incident)
    if target is not None and step is not None and step.name != "act":
        target = f"{target}/{step.name}"
    return {
        "id": approval_id(incident.key, approval["nonce"]),
        "step": approval.get("name", ""),
        "action": approval.get("action", ""),
        "target": target,
        "params": scrubbed(substitute(step.params, incident.bound)) if step is not None else {},
        "until": approval.get("until"),
        "incident": incident_json(config, row),
        "history": list(incident.history),
        "evidence": list(incident.evidence),
    }


async def pending_approvals(store: ReadableStore, config: RemediatorConfig) -> list[dict[str, Any]]:
    """Every open incident's pending approval, soonest deadline first (a bounded scan of the open incidents)."""
    found: list[dict[str, Any]] = []
    after = None
    scanned = 0
    while scanned < SCAN_MAX:
        batch = await store.incident_page(IncidentQuery(limit=SCAN_BATCH, state="open", after=after))
        scanned += len(batch)
        found += [view for row in batch if (view := pending_view(config, row)) is not None]
        if len(batch) < SCAN_BATCH:
            break
        after = batch[-1].position
    return sorted(found, key=lambda view: str(view["until"]))


async def live_pending(request: web.Request, public_id: str) -> tuple[dict[str, Any] | None, str]:
    """The pending approval this id names, read from the state backend (the source of truth), or None and why."""
    parsed = parse_approval_id(public_id)
    if parsed is None:
        return None, "unknown"
    key, nonce = parsed
    engine = request.app[READ_ACCESS].engine(request)
    incident: Incident | None = await engine.state.incident(key)
    if incident is None or not approval_matches(incident, nonce):
        return None, "unknown"
    if incident.closed:
        return None, "resolved"
    if incident.approval.get("state") == "expired" or (
        incident.approval.get("state") == "pending" and not awaits_approval(incident)
    ):
        return None, "expired"
    if incident.approval.get("state") != "pending":
        return None, "not_pending"
    return pending_view(engine.config, IncidentRow(incident, incident.last_attempt_at or now())), "pending"


async def precise(state: StateBackend, public_id: str, result: str) -> str:
    """Engine.decide_approval's answer made precise for the person who clicked: an approval that is no longer
    pending because its deadline passed (the timers expired it) is `expired`, not just `not_pending`."""
    parsed = parse_approval_id(public_id)
    if result != "not_pending" or parsed is None:
        return result
    incident = await state.incident(parsed[0])
    if incident is not None and approval_matches(incident, parsed[1]) and incident.approval.get("state") == "expired":
        return "expired"
    return result


def approver(session: Session) -> str:
    """Who an approval from this session is recorded as: console:<web-config user> or console:token."""
    return f"console:{session.user}"
