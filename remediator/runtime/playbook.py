"""A rule's playbook run as the runbook's procedure: each act step in order, skipped unless its `when` holds, its
`verify` polled on the incident's own timer until it holds or its deadline passes, then the next step; when no
step is left, a human gets the incident with the history of what was tried and what was seen."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from remediator.actions.base import ActionRegistry, substitute
from remediator.config import ActStep, DiagnoseStep, RemediatorConfig, RuleConfig
from remediator.playbook.evidence import EvidenceBackends, gather
from remediator.policy.decide import Plan, Reason, admission
from remediator.policy.windows import in_window
from remediator.runtime.acting import Actor
from remediator.runtime.journal import Journal
from remediator.state.base import Hold, StateBackend
from remediator.state.incident import Incident, now

HISTORY_LIMIT = 50
SEEN_LIMIT = 300
EVIDENCE_LIMIT = 20
ID_PART = re.compile(r"[A-Za-z0-9_-]{1,2048}")  # base64url, as approval_id and token_urlsafe write it


class Progress(enum.Enum):
    """Where a playbook stands after a turn."""

    DONE = "done"  # a step succeeded (verified, or with nothing to verify): the playbook ended
    WAITING = "waiting"  # a step's verification is being polled on the incident's timer
    APPROVAL = "approval"  # a step waits for a human's approval (the caller pages with the links)
    SPENT = "spent"  # every step was tried: a human gets the incident
    HANDOVER = "handover"  # an escalate step was reached: a human gets the incident with what was gathered


def approval_id(incident_key: str, nonce: str) -> str:
    """The approval's public id: the incident it belongs to and a single-use random nonce."""
    return base64.urlsafe_b64encode(incident_key.encode()).decode().rstrip("=") + "." + nonce


def parse_approval_id(approval: str) -> tuple[str, str] | None:
    """The incident key and nonce of an approval id, or None when it is not one (anything but base64url text, a
    key with a control character, a nonce that token_urlsafe could not have made)."""
    encoded, _, nonce = approval.partition(".")
    if len(approval) > 2048 or not ID_PART.fullmatch(encoded) or not ID_PART.fullmatch(nonce):
        return None
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return None
    return key, nonce


def step_digest(step: ActStep) -> str:
    """What an approval was given for: the step as configured when it was asked (name, action, parameters,
    `when`, `verify`; not its deadline or runbook citation). A reload that changes the step voids the approval."""
    shown = step.model_dump_json(exclude={"approval", "source"})
    return hashlib.sha256(shown.encode()).hexdigest()[:32]


def approval_still_for(incident: Incident, rule: RuleConfig | None) -> bool:
    """Whether the incident's approval is for a step of its rule as it is now configured: the rule exists, the step
    at the approval's index is an act step of the same name and action, and (when recorded) the same digest."""
    if rule is None:
        return False
    index = int(incident.approval.get("step", "-1") or -1)
    step = rule.playbook[index] if 0 <= index < len(rule.playbook) else None
    if not isinstance(step, ActStep) or step.approval is None:
        return False
    if (step.name, step.action) != (incident.approval.get("name"), incident.approval.get("action")):
        return False
    digest = incident.approval.get("digest")
    return digest is None or hmac.compare_digest(digest, step_digest(step))


def approval_matches(incident: Incident, nonce: str) -> bool:
    """Whether the nonce is the incident's pending approval's (constant time)."""
    expected = incident.approval.get("nonce", "")
    return bool(expected) and hmac.compare_digest(expected.encode(), nonce.encode())


class Answer(Protocol):
    """What a condition query came to (remediator.playbook.prometheus.QueryResult)."""

    @property
    def ok(self) -> bool: ...
    @property
    def holds(self) -> bool: ...
    @property
    def seen(self) -> str: ...
    @property
    def error(self) -> str: ...


class Conditions(Protocol):
    """Asks a PromQL condition (remediator.playbook.prometheus.PrometheusClient)."""

    async def query(self, expr: str) -> Answer:
        """The condition's answer; never raises."""


@dataclass(frozen=True)
class Checked:
    """One condition's verdict as recorded: it holds only when the query answered and returned a sample."""

    holds: bool
    text: str


def note(incident: Incident, step: str, outcome: str, detail: str) -> None:
    """Add one line to the incident's step history (bounded)."""
    incident.history.append({"at": now().isoformat(), "step": step, "outcome": outcome, "detail": detail[:1000]})
    del incident.history[:-HISTORY_LIMIT]


def history_text(incident: Incident) -> str:
    """The step history as the page shows it: what ran, what was skipped, what each verification saw."""
    lines = [f"{entry['step']}: {entry['outcome']} - {entry['detail']}" for entry in incident.history]
    return "; ".join(lines)


def gathered(incident: Incident) -> str:
    """A page's detail: the step history and the evidence the diagnose steps found."""
    detail = history_text(incident) or "no step could run"
    if incident.evidence:
        detail += "; evidence: " + "; ".join(f"{e['name']}: {e['text']}" for e in incident.evidence)
    return detail


@dataclass
class Playbooks:
    """Runs rules' steps for incidents held under their lock."""

    config: Callable[[], RemediatorConfig]
    registry: Callable[[], ActionRegistry]
    state: StateBackend
    actor: Actor
    conditions: Callable[[], Conditions | None]
    fill: Callable[[str, Mapping[str, str]], str]
    backends: Callable[[], EvidenceBackends]

    async def check(self, query: str, bound: Mapping[str, str]) -> Checked:
        """Ask a condition; a missing client, a failed, empty or ambiguous answer never holds (fail closed)."""
        client = self.conditions()
        if client is None:
            return Checked(False, "no prometheus configured: the condition cannot be checked")
        try:
            expr = self.fill(query, bound)
        except ValueError as error:
            return Checked(False, f"condition not filled: {error}")
        answer = await client.query(expr)
        if not answer.ok:
            return Checked(False, f"query failed ({answer.error[:SEEN_LIMIT]}): not counted as holding")
        return Checked(answer.holds, (answer.seen or "no sample")[:SEEN_LIMIT])

    async def run_from(
        self,
        index: int,
        held: Hold,
        incident: Incident,
        rule: RuleConfig,
        journal: Journal,
        admitted: bool,
        approved: bool = False,
    ) -> Progress:
        """Run the steps from `index` until one succeeds, waits (verification, approval) or none is left. The
        first step run here was `admitted` (and `approved`) by the caller; later ones each pass the limits and,
        where they ask for it, a human's approval, on their own."""
        steps = rule.playbook
        while index < len(steps):
            step = steps[index]
            incident.step = index
            if isinstance(step, DiagnoseStep):
                await self._diagnose(step, incident, rule, journal)
                index += 1
                continue
            registry = self.registry()
            hands_over = step.action in registry and registry.get(step.action).escalates
            if step.approval is not None and not approved and not hands_over:
                self._ask(incident, index, step)
                journal.add("step", rule.name, "approval_pending", f"{step.name}: waiting for a human's approval")
                return Progress.APPROVAL
            approved = False
            if step.when is not None:
                seen = await self.check(step.when, incident.bound)
                journal.add("step", rule.name, "when_holds" if seen.holds else "skipped", f"{step.name}: {seen.text}")
                if not seen.holds:
                    note(incident, step.name, "skipped", f"precondition not met: {seen.text}")
                    index, admitted = index + 1, False
                    continue
            if hands_over:  # a page, not an action: it asks no limit, and no limit can stop it
                return await self._hand_over(step, incident, rule, journal)
            ran = await self._act(step, held, incident, rule, journal, admitted)
            admitted = False
            if ran is None:
                return Progress.DONE  # a resolve was accepted meanwhile: it closes the incident next
            if ran and step.verify is not None:
                at = now()
                incident.verify_at = at + dt.timedelta(seconds=step.verify.every_seconds)
                incident.verify_until = at + dt.timedelta(seconds=step.verify.within_seconds)
                return Progress.WAITING
            if ran:
                return Progress.DONE  # a step without verify ends the playbook: the still-firing timer checks it
            index += 1
        return Progress.SPENT

    async def _diagnose(self, step: DiagnoseStep, incident: Incident, rule: RuleConfig, journal: Journal) -> None:
        """Gather the step's evidence (read-only, in parallel, bounded, scrubbed) into the incident and the audit."""
        found = await gather(step.probes, incident.bound, self.backends(), step.timeout_seconds)
        for evidence in found:
            incident.evidence.append({"name": evidence.name, "ok": str(evidence.ok).lower(), "text": evidence.text})
            journal.add("evidence", rule.name, "ok" if evidence.ok else "failed", f"{evidence.name}: {evidence.text}")
        del incident.evidence[:-EVIDENCE_LIMIT]
        answered = sum(1 for evidence in found if evidence.ok)
        note(incident, step.name, "diagnosed", f"{answered} of {len(found)} probes answered")

    async def _hand_over(self, step: ActStep, incident: Incident, rule: RuleConfig, journal: Journal) -> Progress:
        """Reach an escalate step: its action never runs; HANDOVER (the caller pages), or DONE when a resolve of the
        incident was accepted meanwhile (no page then)."""
        if await self.state.resolve_pending(incident.key):
            note(incident, step.name, "not_run", "the alert resolved before the page went out")
            journal.add("step", rule.name, "not_run", f"{step.name}: the alert resolved before the page went out")
            return Progress.DONE
        said = substitute(step.params, incident.bound).get("note", "needs a human")
        note(incident, step.name, "handed_over", str(said))
        journal.add("step", rule.name, "handed_over", f"{step.name}: a human gets the incident with what was gathered")
        return Progress.HANDOVER

    def _ask(self, incident: Incident, index: int, step: ActStep) -> None:
        """Open the step's approval: a fresh single-use nonce, expiring after the step's `within_minutes`."""
        assert step.approval is not None
        until = now() + dt.timedelta(minutes=step.approval.within_minutes)
        incident.approval = {
            "nonce": secrets.token_urlsafe(24),
            "step": str(index),
            "name": step.name,
            "action": step.action,
            "digest": step_digest(step),
            "state": "pending",
            "until": until.isoformat(),
        }
        incident.approval_until = until
        note(incident, step.name, "approval_pending", f"{step.action} waits for a human until {until.isoformat()}")

    async def _act(
        self, step: ActStep, held: Hold, incident: Incident, rule: RuleConfig, journal: Journal, admitted: bool
    ) -> bool | None:
        """Run one act step; return whether its action ran and succeeded, or None when a resolve of the incident was
        accepted before it could start (a `when` query or the admission took a while): then nothing runs."""
        target = rule.target_for(incident.bound) + ("" if step.name == "act" else f"/{step.name}")
        try:
            params = (
                self.registry().get(step.action).params_model.model_validate(substitute(step.params, incident.bound))
            )
        except (KeyError, ValidationError) as error:
            note(incident, step.name, "not_run", f"parameters invalid: {error}")
            return False
        held_back = self._held_back(rule)
        if held_back is not None:  # a reload may have turned these on since the playbook started (or was approved)
            note(incident, step.name, "not_run", f"{held_back}: would run {step.action}")
            journal.add("step", rule.name, "not_run", f"{step.name}: {held_back}")
            return False
        if not admitted:
            denial = await self.state.admit(admission(self.config(), rule, target, incident.key), consume=True)
            if denial is not None:
                note(incident, step.name, "denied", f"{denial}: the limits refused this step")
                journal.add("step", rule.name, "denied", f"{step.name}: {denial}")
                return False
            await self.state.save(incident, held)  # the step's claim is on record before it runs
        if await self.state.resolve_pending(incident.key):
            note(incident, step.name, "not_run", "the alert resolved before the step could start")
            journal.add("step", rule.name, "not_run", f"{step.name}: the alert resolved before the step could start")
            return None
        plan = Plan(rule, Reason.EXECUTED, f"step {step.name}", params, incident.bound, target)
        outcome = await self.actor.run(rule, plan, journal, self.config().circuit_breaker, step.action)
        note(incident, step.name, "ran" if outcome.ok else "failed", outcome.detail)
        return outcome.ok

    def _held_back(self, rule: RuleConfig) -> str | None:
        """Why no step of the rule may run for real now (dry run, a maintenance window), or None: the bounds that
        precheck applies to a playbook's start, applied to each of its later steps too."""
        config = self.config()
        if config.dry_run or rule.dry_run:
            return "dry run"
        at = now()
        window = next((w for w in config.maintenance_windows if in_window(w, at)), None)
        return f"inside maintenance window {window.name}" if window is not None else None

    async def poll(self, held: Hold, incident: Incident, rule: RuleConfig, journal: Journal) -> Progress:
        """The verifying step's timer: DONE when verified, WAITING while it may still hold, and once its deadline
        passed the next steps' progress."""
        steps = rule.playbook
        step = steps[incident.step] if incident.step < len(steps) else None
        if not isinstance(step, ActStep) or step.verify is None:
            incident.verify_at = incident.verify_until = None
            return Progress.SPENT
        seen = await self.check(step.verify.query, incident.bound)
        at = now()
        if seen.holds:
            note(incident, step.name, "verified", seen.text)
            journal.add("step", rule.name, "verified", f"{step.name}: {seen.text}")
            incident.verify_at = incident.verify_until = None
            return Progress.DONE
        if incident.verify_until is not None and at < incident.verify_until:
            incident.verify_at = at + dt.timedelta(seconds=step.verify.every_seconds)
            return Progress.WAITING
        note(incident, step.name, "not_verified", f"within {step.verify.within_seconds:g}s: {seen.text}")
        journal.add("step", rule.name, "not_verified", f"{step.name}: {seen.text}")
        incident.verify_at = incident.verify_until = None
        return await self.run_from(incident.step + 1, held, incident, rule, journal, admitted=False)
