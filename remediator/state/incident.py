"""An incident: one alert's (fingerprint, startsAt) under one rule, and what was done about it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


def now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


@dataclass
class Incident:
    """What the remediator remembers about one incident (fingerprint, startsAt)."""

    key: str
    alertname: str
    labels: dict[str, str]
    rule: str | None
    state: str
    attempts: int
    last_attempt_at: dt.datetime | None
    escalate_at: dt.datetime | None
    escalated: bool
    escalation_reason: str | None
