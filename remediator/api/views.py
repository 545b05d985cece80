"""The read model behind GET /api/v1/incidents, /api/v1/incidents/{id}, /api/v1/remediations and the console:
query parameters parsed into store queries, opaque cursors, and incidents as JSON with their timelines."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, cast

from pydantic import ValidationError

from remediator.audit.postgres import PostgresStore
from remediator.audit.reads import (
    AuditQuery,
    IncidentPosition,
    IncidentQuery,
    IncidentRow,
    IncidentState,
    incident_state,
)
from remediator.audit.sqlite import SqliteStore
from remediator.config import RemediatorConfig
from remediator.intake.payload import parse_payload
from remediator.policy.decide import bind
from remediator.state.base import AuditStore
from remediator.state.incident import Incident, now

INCIDENT_LIMIT = 1000
AUDIT_LIMIT = 10_000
TIMELINE_LIMIT = 2000
TARGET_SCAN_BATCH = 500
TARGET_SCAN_MAX = 5000  # rows read per page for a computed filter (target, shown state): then a cursor


# The states an incident is shown in: the audit store's (INCIDENT_STATES), and two computed from the record:
# verifying, an open incident whose step ran and whose verification is still watching it, and waiting_approval,
# an open incident whose next step waits for a human's approval before its deadline.
ShownState = IncidentState | Literal["verifying", "waiting_approval"]
SHOWN_STATES: tuple[ShownState, ...] = (
    "open",
    "acting",
    "verifying",
    "waiting",
    "waiting_approval",
    "escalated",
    "resolved",
)
COMPUTED_STATES = frozenset({"acting", "verifying", "waiting", "waiting_approval", "escalated"})


def awaits_approval(incident: Incident) -> bool:
    """Whether the incident is open and a step of it waits for a human's approval whose deadline has not passed."""
    pending = not incident.closed and incident.approval.get("state") == "pending"
    return pending and (incident.approval_until is None or incident.approval_until > now())


def shown_state(incident: Incident) -> ShownState:
    """The state the incident is shown in: waiting_approval while a step waits for a human, verifying while a
    step's verification watches it, else its store state."""
    if awaits_approval(incident):
        return "waiting_approval"
    if not incident.closed and incident.verify_until is not None:
        return "verifying"
    return incident_state(incident)


class QueryError(ValueError):
    """A query parameter is invalid: the API answers 400 with this message."""


class ReadableStore(Protocol):
    """The audit store's reads (remediator/audit/reads.py), in SQLite and PostgreSQL."""

    async def incident_page(self, query: IncidentQuery) -> list[IncidentRow]:
        """Incident records matching the query, in the incidents' order."""

    async def audit_page(self, query: AuditQuery) -> list[dict[str, Any]]:
        """Audit entries matching the query, newest first."""

    async def payloads_received_at(self, times: Sequence[dt.datetime]) -> list[bytes]:
        """The payloads received at these times."""

    async def incident(self, key: str) -> Incident | None:
        """The incident with this key."""


class OutboxReads(Protocol):
    """The outbox's reads."""

    async def records_of(self, incident: str) -> list[dict[str, Any]]:
        """Every outbox record of an incident, oldest first."""


def readable(store: AuditStore) -> tuple[ReadableStore, OutboxReads]:
    """The reads of the audit store in use (SQLite or PostgreSQL)."""
    if isinstance(store, SqliteStore | PostgresStore):
        return store, store.outbox()
    raise TypeError(f"no reads for {type(store).__name__}")


def millis(value: dt.datetime | str | float | None) -> str | None:
    """A time as UTC ISO 8601 with milliseconds (epoch seconds and ISO text accepted); None stays None."""
    if value is None:
        return None
    if isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if "\x00" in value or len(value) > 4096:
        raise QueryError(f"{name} must be text without NUL, at most 4096 characters")
    return value


def _time(query: Mapping[str, str], name: str) -> dt.datetime | None:
    value = _text(query, name)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as error:
        raise QueryError(f"{name} must be an ISO 8601 time, e.g. 2026-11-22T03:00:00Z") from error
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


def _limit(query: Mapping[str, str], default: int, most: int) -> int:
    text = query.get("limit")
    if text is None or text == "":
        return default
    try:
        limit = int(text)
    except ValueError as error:
        raise QueryError("limit must be an integer") from error
    if not 1 <= limit <= most:
        raise QueryError(f"limit must be from 1 to {most}")
    return limit


def encode_cursor(data: Mapping[str, Any]) -> str:
    """An opaque cursor for the next page."""
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> dict[str, Any] | None:
    """Read a cursor encode_cursor made; raise QueryError for anything else."""
    if text is None or text == "":
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError) as error:
        raise QueryError("cursor is not one this API gave") from error
    if not isinstance(data, dict):
        raise QueryError("cursor is not one this API gave")
    return cast(dict[str, Any], data)


@dataclass(frozen=True)
class IncidentFilter:
    """GET /api/v1/incidents' parameters: the store query and the computed filters, `target` and the shown
    `state` where the store's state is wider (verifying and waiting_approval are among its open incidents, and
    acting, waiting and escalated leave those out)."""

    query: IncidentQuery
    target: str | None
    state: ShownState | None = None

    def computed(self) -> bool:
        """Whether rows must be checked here, beyond the store's query."""
        return self.target is not None or self.state is not None

    def keeps(self, config: RemediatorConfig, incident: Incident) -> bool:
        """Whether the incident passes the computed filters."""
        if self.state is not None and shown_state(incident) != self.state:
            return False
        return self.target is None or target_of(config, incident) == self.target


def incident_filter(query: Mapping[str, str]) -> IncidentFilter:
    """Parse the incidents' query parameters; raise QueryError."""
    state: IncidentState | None = None
    shown: ShownState | None = None
    text = _text(query, "state")
    if text is not None:
        shown = next((s for s in SHOWN_STATES if s == text), None)
        if shown is None:
            raise QueryError(f"state must be one of {', '.join(SHOWN_STATES)}")
        state = "open" if shown in {"waiting_approval", "verifying"} else cast(IncidentState, shown)
    cursor = decode_cursor(query.get("cursor"))
    after = None
    if cursor is not None:
        try:
            after = IncidentPosition(bool(cursor["c"]), dt.datetime.fromisoformat(str(cursor["u"])), str(cursor["k"]))
        except (KeyError, ValueError) as error:
            raise QueryError("cursor is not one this API gave") from error
    return IncidentFilter(
        IncidentQuery(
            limit=_limit(query, 50, INCIDENT_LIMIT),
            state=state,
            alertname=_text(query, "alertname"),
            rule=_text(query, "rule"),
            priority=_text(query, "priority"),
            since=_time(query, "since"),
            until=_time(query, "until"),
            after=after,
        ),
        _text(query, "target"),
        shown if shown in COMPUTED_STATES else None,
    )


def audit_filter(query: Mapping[str, str]) -> AuditQuery:
    """Parse the remediations' query parameters; raise QueryError."""
    cursor = decode_cursor(query.get("cursor"))
    before = None
    if cursor is not None:
        before = cursor.get("id")
        if not isinstance(before, int) or isinstance(before, bool):
            raise QueryError("cursor is not one this API gave")
    return AuditQuery(
        limit=_limit(query, 100, AUDIT_LIMIT),
        incident=_text(query, "incident"),
        alertname=_text(query, "alertname"),
        rule=_text(query, "rule"),
        event=_text(query, "event"),
        decision=_text(query, "decision"),
        priority=_text(query, "priority"),
        since=_time(query, "since"),
        until=_time(query, "until"),
        before_id=before,
    )


def target_of(config: RemediatorConfig, incident: Incident) -> str | None:
    """The target the incident's rule acts on, from its labels under the rule in force (None: no rule, or the
    labels do not bind)."""
    rule = next((r for r in config.rules if r.name == incident.rule), None)
    if rule is None:
        return None
    bound, _ = bind(rule, incident.labels)
    return rule.target_for(bound) if bound is not None else None


def alert_key(incident_key: str) -> str:
    """The alert's incident key (fingerprint@startsAt) of an incident key (that, then #rule)."""
    return incident_key.rpartition("#")[0] or incident_key


def incident_json(config: RemediatorConfig, row: IncidentRow) -> dict[str, Any]:
    """An incident as the API shows it."""
    incident = row.incident
    return {
        "id": incident.key,
        "alert_key": alert_key(incident.key),
        "alertname": incident.alertname,
        "rule": incident.rule,
        "state": shown_state(incident),
        "attempts": incident.attempts,
        "escalated": incident.escalated,
        "escalation_reason": incident.escalation_reason,
        "target": target_of(config, incident),
        "labels": dict(incident.labels),
        "last_attempt_at": millis(incident.last_attempt_at),
        "retry_at": millis(incident.retry_at),
        "escalate_at": millis(incident.escalate_at),
        "updated_at": millis(row.updated_at),
    }


def _position_cursor(row: IncidentRow) -> str:
    position = row.position
    return encode_cursor({"c": position.closed, "u": position.updated_at.isoformat(), "k": position.key})


async def list_incidents(
    store: ReadableStore, config: RemediatorConfig, wanted: IncidentFilter
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of incidents and the cursor of the next one (None at the end)."""
    query = wanted.query
    if not wanted.computed():
        rows = await store.incident_page(replace(query, limit=query.limit + 1))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return [incident_json(config, row) for row in rows], _position_cursor(rows[-1]) if more else None
    found: list[IncidentRow] = []
    scanned = 0
    after = query.after
    while True:
        batch = await store.incident_page(replace(query, limit=TARGET_SCAN_BATCH, after=after))
        for row in batch:
            scanned += 1
            if wanted.keeps(config, row.incident):
                found.append(row)
                if len(found) > query.limit:
                    page = found[: query.limit]
                    return [incident_json(config, r) for r in page], _position_cursor(page[-1])
        if len(batch) < TARGET_SCAN_BATCH:
            return [incident_json(config, r) for r in found], None
        after = batch[-1].position
        if scanned >= TARGET_SCAN_MAX:  # a short page: the next one goes on from where the scan stopped
            return [incident_json(config, r) for r in found], _position_cursor(batch[-1])


def audit_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An audit entry as the API shows it (its time in UTC with milliseconds)."""
    return {**entry, "at": millis(entry["at"])}


async def list_remediations(store: ReadableStore, query: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
    """A page of audit entries, newest first, and the cursor of the next one (None at the end)."""
    entries = await store.audit_page(replace(query, limit=query.limit + 1))
    more = len(entries) > query.limit
    entries = entries[: query.limit]
    cursor = encode_cursor({"id": entries[-1]["id"]}) if more else None
    return [audit_json(entry) for entry in entries], cursor


def _alert_document(payloads: Sequence[bytes], fingerprint: str, starts: str) -> dict[str, Any] | None:
    """The newest copy of the alert in these payloads: annotations, generatorURL and the Alertmanager's URL."""
    found = None
    for body in payloads:
        try:
            document = parse_payload(body)
        except ValidationError:
            continue
        for alert in document["alerts"]:
            same_start = alert["startsAt"].astimezone(dt.UTC).isoformat() == starts
            if alert["fingerprint"].lower() == fingerprint and same_start:
                found = {
                    "annotations": dict(alert.get("annotations", {})),
                    "generator_url": alert.get("generatorURL", ""),
                    "alertmanager_url": document.get("externalURL", ""),
                    "status": alert["status"],
                }
    return found


def page_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox record (a page or its resolve) as the API shows it."""
    return {
        **record,
        "created_at": millis(record["created_at"]),
        "next_attempt_at": millis(record["next_attempt_at"]),
        "delivered_at": millis(record["delivered_at"]),
    }


async def incident_detail(
    store: ReadableStore, outbox: OutboxReads, config: RemediatorConfig, key: str
) -> dict[str, Any] | None:
    """An incident with its timeline: its alert's audit entries (oldest first), its pages with their delivery
    attempts, and the alert as it last came (annotations, generatorURL); None when there is no such incident."""
    incident = await store.incident(key)
    if incident is None:
        return None
    alert = alert_key(key)
    entries = await store.audit_page(AuditQuery(limit=TIMELINE_LIMIT, incident=alert))
    entries = [e for e in reversed(entries) if e["rule"] in {None, incident.rule}]
    received = [dt.datetime.fromisoformat(str(e["at"])) for e in entries if e["event"] == "received"]
    fingerprint, _, starts = alert.partition("@")
    document = _alert_document(await store.payloads_received_at(received[-20:]), fingerprint, starts)
    last = dt.datetime.fromisoformat(str(entries[-1]["at"])) if entries else dt.datetime.now(dt.UTC)
    view = incident_json(config, IncidentRow(incident, last))
    return {
        "incident": view,
        "alert": document,
        "timeline": [audit_json(entry) for entry in entries],
        "pages": [page_json(record) for record in await outbox.records_of(key)],
    }
