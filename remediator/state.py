"""What the policy needs to remember, behind two small interfaces: the state backend (dedup, attempts, limits,
locks, pending escalations; memory or Redis) and the audit store (audit trail and inbox; SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import enum
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from remediator.config import RateLimit
from remediator.incident import Incident
from remediator.payload import WebhookAlert


class StateUnavailableError(RuntimeError):
    """The shared state cannot be read or written: the remediator fails closed (no action) and escalates."""


class AuditUnavailableError(RuntimeError):
    """The audit store cannot record: the webhook answers 503 rather than acknowledge what was not recorded."""


class Denial(enum.StrEnum):
    """Why an admission was refused."""

    CIRCUIT = "circuit"
    COOLDOWN = "cooldown"
    RATE = "rate"
    BUDGET = "budget"


@dataclass(frozen=True)
class Admission:
    """One action's claim on the limits: its circuit breaker, the target's cooldown, the rule's bucket and the
    global hourly budget."""

    action: str
    breaker_open_seconds: float
    rule: str
    rate: RateLimit
    target: str
    cooldown_seconds: float
    actions_per_hour: int
    claimant: str  # the incident, for the budget's record


@dataclass(frozen=True)
class BreakerPolicy:
    """An action's circuit opens after `failures` consecutive failures and half-opens after `open_seconds`."""

    failures: int
    open_seconds: float


class IncidentStore(Protocol):
    """Where incidents are kept."""

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""

    async def due_escalations(self, at: dt.datetime) -> list[Incident]:
        """Return open, not yet escalated incidents whose escalation time has come."""


class StateBackend(IncidentStore, Protocol):
    """Everything the policy decides on; every check-and-update is atomic across the replicas sharing it."""

    async def open(self) -> None:
        """Connect (lazily for Redis: the first call connects)."""

    def hold(self, key: str, ttl_seconds: float) -> AbstractAsyncContextManager[bool]:
        """Hold the incident's lock (at most `ttl_seconds` if the holder dies); yields False if it was not won."""

    async def ping(self) -> None:
        """Raise StateUnavailableError when the backend cannot be reached."""

    async def admit(self, admission: Admission, consume: bool) -> Denial | None:
        """Check the circuit, cooldown, rate and budget in one step; with consume, take all or none."""

    async def record_outcome(self, action: str, ok: bool, policy: BreakerPolicy) -> bool:
        """Record an action's outcome; return whether its circuit is now open."""

    async def budget_remaining(self, actions_per_hour: int) -> int:
        """Actions left in the trailing hour."""

    async def prune(self, older_than: dt.datetime) -> None:
        """Forget closed incidents older than the retention."""

    async def close(self) -> None:
        """Release connections."""


class AuditStore(IncidentStore, Protocol):
    """The durable record: every received alert (the inbox, resumed after a restart) and every step taken."""

    async def open(self) -> None:
        """Connect and create the schema; raise AuditUnavailableError when that fails."""

    async def receive(self, alerts: list[WebhookAlert]) -> list[int]:
        """Durably record received alerts before the webhook answers; return their inbox ids."""

    async def pending(self) -> list[tuple[int, WebhookAlert]]:
        """Return this replica's inbox entries not yet processed."""

    async def done(self, inbox_id: int) -> None:
        """Mark an inbox entry processed."""

    async def audit(
        self, alert: WebhookAlert, event: str, rule: str | None = None, decision: str | None = None, detail: str = ""
    ) -> None:
        """Append one audit entry for the alert."""

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest audit entries first."""

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete what is older than the retention."""

    async def close(self) -> None:
        """Close connections once running calls have finished."""
