"""An incident: one alert's (fingerprint, startsAt) under one rule, what was done about it, and its timers."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

OPEN = "open"
CLOSED = "closed"  # resolved: final, and remembered so that a late firing copy never acts


TIMES = ("last_attempt_at", "escalate_at", "retry_at", "verify_at", "verify_until", "approval_until")


def now() -> dt.datetime:
    """Return the current UTC time."""
    return dt.datetime.now(dt.UTC)


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass
class Incident:
    """What the remediator remembers about one incident (fingerprint, startsAt) under one rule."""

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
    retry_at: dt.datetime | None = None
    # The playbook's progress: the step running or verifying, its verification's next poll and deadline, the
    # allowlisted label values its steps are filled with, what each step did, and the evidence gathered.
    step: int = 0
    verify_at: dt.datetime | None = None
    verify_until: dt.datetime | None = None
    bound: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)
    evidence: list[dict[str, str]] = field(default_factory=list)
    # A step waiting for a human: its nonce, its step, its state (pending, approved, denied, expired), who and when.
    approval: dict[str, str] = field(default_factory=dict)
    approval_until: dt.datetime | None = None

    @property
    def closed(self) -> bool:
        """Whether the incident resolved (nothing may act on it again)."""
        return self.state == CLOSED

    def due_at(self) -> dt.datetime | None:
        """When its next timer falls due: a retry, or the still-firing escalation; None when closed or idle."""
        if self.closed:
            return None
        still_firing = None if self.escalated else self.escalate_at
        times = [t for t in (self.retry_at, self.verify_at, self.approval_until, still_firing) if t is not None]
        return min(times) if times else None

    def close(self) -> None:
        """Resolve the incident: it is final, and every timer of it is cancelled."""
        self.state = CLOSED
        self.retry_at = None
        self.escalate_at = None
        self.verify_at = None
        self.verify_until = None
        self.approval_until = None
        if self.approval.get("state") == "pending":
            self.approval["state"] = "cancelled"

    def to_record(self) -> str:
        """Serialise to the JSON every store keeps (the one place that knows the fields' shapes)."""
        data = asdict(self)
        for name in TIMES:
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_record(cls, text: str | bytes) -> Incident:
        """Read what to_record wrote."""
        data: dict[str, Any] = json.loads(text)
        for name in TIMES:
            data[name] = _time(data.get(name))
        return cls(**data)
