"""What the console and the read API ask of an audit store: filtered, keyset-paginated queries of incidents and
audit entries, an incident's outbox records, and the payloads an alert came in (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from remediator.state.incident import Incident

# What an incident's record says about it; "ignored" alerts have no record (see the remediations' decision filter).
IncidentState = Literal["open", "acting", "waiting", "escalated", "resolved"]
INCIDENT_STATES: tuple[IncidentState, ...] = ("open", "acting", "waiting", "escalated", "resolved")


def incident_state(incident: Incident) -> IncidentState:
    """The state an incident is shown in: resolved (closed), escalated (a human has it), acting (the remediator
    ran its action and watches it: retry or still-firing timer), or waiting (open, nothing run yet)."""
    if incident.closed:
        return "resolved"
    if incident.escalated:
        return "escalated"
    return "acting" if incident.attempts > 0 else "waiting"


@dataclass(frozen=True)
class IncidentPosition:
    """Where a page of incidents ends, in their order: open first, then by last update (newest first), then key."""

    closed: bool
    updated_at: dt.datetime
    key: str


@dataclass(frozen=True)
class IncidentQuery:
    """A filter over incident records (each None: no filter) and the page after `after`. `since`/`until` bound
    the incident's last update; `priority` is its alert's priority label."""

    limit: int
    state: IncidentState | None = None
    alertname: str | None = None
    rule: str | None = None
    priority: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    after: IncidentPosition | None = None


@dataclass(frozen=True)
class IncidentRow:
    """An incident record with its last update time."""

    incident: Incident
    updated_at: dt.datetime

    @property
    def position(self) -> IncidentPosition:
        """This row's place in the incidents' order (for a cursor)."""
        return IncidentPosition(self.incident.closed, self.updated_at, self.incident.key)


@dataclass(frozen=True)
class AuditQuery:
    """A filter over audit entries (each None: no filter), newest first, the page of ids below `before_id` (and
    above `above_id`).
    `incident` is the alert's incident key (fingerprint@startsAt, without the rule)."""

    limit: int
    incident: str | None = None
    alertname: str | None = None
    rule: str | None = None
    event: str | None = None
    decision: str | None = None
    priority: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None
    above_id: int | None = None  # only ids above this: bounds a scan to the newest entries


def state_condition(state: IncidentState, escalated: str, attempts: str) -> str:
    """The SQL condition for a shown state, given the SQL expressions of the record's escalated flag (true or
    false) and attempt count; constant text, no parameters."""
    conditions = {
        "open": "state = 'open'",
        "acting": f"state = 'open' AND NOT {escalated} AND {attempts} > 0",
        "waiting": f"state = 'open' AND NOT {escalated} AND {attempts} = 0",
        "escalated": f"state = 'open' AND {escalated}",
        "resolved": "state = 'closed'",
    }
    return conditions[state]


def utc(value: dt.datetime) -> dt.datetime:
    """The time in UTC (a naive time is taken as UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


OUTBOX_COLUMNS = (
    "id",
    "channel",
    "kind",
    "reason",
    "state",
    "attempts",
    "created_at",
    "next_attempt_at",
    "delivered_at",
    "last_error",
    "coalesced",
)
