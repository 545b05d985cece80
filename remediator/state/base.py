"""What the policy needs to remember, behind two small interfaces: the state backend (incidents and their locks,
timers and tombstones, limits and breakers; memory or Redis) and the audit store (audit trail, inbox, incident
records and the escalation outbox; SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from remediator.config import RateLimit
from remediator.intake.payload import WebhookAlert
from remediator.state.incident import Incident


class StateUnavailableError(RuntimeError):
    """The shared state cannot be read or written: the remediator fails closed (no action) and escalates."""


class LockLostError(RuntimeError):
    """An incident's lock expired or was taken over while held: the holder must not write or act any more."""


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
    """One action's claim on the limits: its circuit breaker (per rule and target), the target's cooldown, the
    rule's bucket and the global hourly budget. A claim on a half-open breaker takes its one trial for
    `trial_seconds` (long enough for the action to finish); another trial may start only when that lease ends."""

    breaker: str  # the breaker's key: "<rule>:<target>"
    breaker_open_seconds: float
    rule: str
    rate: RateLimit
    target: str
    cooldown_seconds: float
    actions_per_hour: int
    claimant: str  # the incident, for the budget's record
    trial_seconds: float = 3600.0  # the half-open trial's lease: the rule's deadline


@dataclass(frozen=True)
class BreakerPolicy:
    """A breaker opens after `failures` consecutive failures and half-opens after `open_seconds`: then one trial
    runs at a time; its success closes the breaker, its failure opens it for another `open_seconds`."""

    failures: int
    open_seconds: float


@dataclass(frozen=True)
class RuleLimits:
    """A rule's limits, as a read of what is left of them needs them: its bucket's rate, its cooldown, and the
    pattern of the targets it claims cooldowns on (its breakers are keyed by its name)."""

    rule: str
    rate: RateLimit
    cooldown_seconds: float
    targets: re.Pattern[str]


@dataclass(frozen=True)
class LimitsQuery:
    """What to read the limits left for: the rules, the global hourly budget and the breakers' open period."""

    rules: tuple[RuleLimits, ...]
    actions_per_hour: int
    breaker_open_seconds: float


BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class CooldownLeft:
    """A cooldown running on a target: no action of the rule on it until `until`."""

    target: str
    until: dt.datetime


@dataclass(frozen=True)
class BreakerLeft:
    """One breaker (a rule on a target) the backend remembers: closed with failures counted, open until it
    half-opens, or half-open (`until`: the end of the running trial's lease; None: a trial may start)."""

    target: str
    state: BreakerState
    failures: int
    until: dt.datetime | None


@dataclass(frozen=True)
class RuleLeft:
    """What is left of one rule's limits: its bucket's tokens, its cooldowns running, its breakers."""

    rule: str
    tokens: float
    burst: int
    cooldowns: tuple[CooldownLeft, ...]
    breakers: tuple[BreakerLeft, ...]


@dataclass(frozen=True)
class LimitsLeft:
    """A read of the limits at `at` (the backend's clock): the hourly budget left and each rule's limits left;
    `truncated` when there were more cooldowns or breakers than one read looks through."""

    at: dt.datetime
    budget_left: int
    rules: tuple[RuleLeft, ...]
    truncated: bool = False


def epoch(seconds: float) -> dt.datetime:
    """Wall-clock seconds as a UTC time."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def breaker_left(
    target: str, failures: int, opened_at: float | None, trial_until: float | None, at: float, open_seconds: float
) -> BreakerLeft:
    """A breaker's state at `at` (seconds), from what a backend keeps of it, as admission reads it."""
    if opened_at is None:
        return BreakerLeft(target, "closed", failures, None)
    if at - opened_at < open_seconds:
        return BreakerLeft(target, "open", failures, epoch(opened_at + open_seconds))
    running = epoch(trial_until) if trial_until is not None and at < trial_until else None
    return BreakerLeft(target, "half_open", failures, running)


class Delivery(NamedTuple):
    """Where an alert waits in the inbox: its payload's entry, its position in that payload, and when it came.
    (A named tuple: one is made per accepted alert, on the webhook's path.)"""

    inbox_id: int
    position: int
    received_at: dt.datetime


@dataclass(frozen=True)
class AuditEntry:
    """One step of the audit trail for one alert."""

    at: dt.datetime
    alert: WebhookAlert
    event: str
    rule: str | None = None
    decision: str | None = None
    detail: str = ""


@dataclass
class Hold:
    """An incident's lock as held: whether it was won, the incident as read under it, and the incident to save
    as the lock is released (with Redis, one step)."""

    won: bool
    incident: Incident | None
    save_on_release: Incident | None = None
    token: str = ""  # the lock's fencing token ('' where locks cannot expire: one process)
    lost: bool = False  # the lock expired or was taken over: nothing more may be written or done under it
    resolving: bool = False  # a resolve of this incident was accepted: nothing may act on it any more


class IncidentStore(Protocol):
    """Where incidents are kept."""

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""

    async def due_timers(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents with a timer (retry or still-firing escalation) due by `at`."""

    async def forget_closed(self, before: dt.datetime) -> None:
        """Forget resolved incidents closed before `before`."""


class StateBackend(IncidentStore, Protocol):
    """Everything the policy decides on; every check-and-update is atomic across the replicas sharing it."""

    async def open(self) -> None:
        """Connect (lazily for Redis: the first call connects)."""

    async def save(self, incident: Incident, held: Hold | None = None) -> None:
        """Insert or update an incident; under a hold, only while it is still held (LockLostError otherwise)."""

    async def mark_resolving(self, key: str) -> None:
        """Note that a resolve of the incident was accepted, before its lock is waited for."""

    async def resolve_pending(self, key: str) -> bool:
        """Whether a resolve of the incident was accepted (mark_resolving) since its holder took the lock: a step
        about to run stops (Hold.resolving is only what was known when the lock was taken)."""

    def hold(self, key: str, ttl_seconds: float) -> AbstractAsyncContextManager[Hold]:
        """Hold the incident's lock (at most `ttl_seconds` if the holder dies) and read the incident under it;
        on a normal exit save `save_on_release`, if set, and release."""

    async def ping(self) -> None:
        """Raise StateUnavailableError when the backend cannot be reached."""

    async def admit(self, admission: Admission, consume: bool) -> Denial | None:
        """Check the circuit, cooldown, rate and budget in one step; with consume, take all or none."""

    async def record_outcome(self, breaker: str, ok: bool, policy: BreakerPolicy) -> bool:
        """Record an action's outcome on its breaker (rule and target); return whether the circuit is now open."""

    async def budget_remaining(self, actions_per_hour: int) -> int:
        """Actions left in the trailing hour."""

    async def limits_left(self, query: LimitsQuery) -> LimitsLeft:
        """What is left of the limits (budget, buckets, cooldowns, breakers); a read that changes nothing."""

    async def prune(self, older_than: dt.datetime) -> None:
        """Forget closed incidents older than the retention."""

    async def catch_up(self) -> int:
        """Copy again the incidents whose readable copy (a state kept apart from the audit store) is behind;
        return how many were copied."""

    async def close(self) -> None:
        """Release connections."""


class AuditStore(IncidentStore, Protocol):
    """The durable record: every received alert (the inbox, resumed after a restart) and every step taken."""

    async def open(self) -> None:
        """Connect and create the schema; raise AuditUnavailableError when that fails."""

    async def receive(self, body: bytes, count: int) -> tuple[int, dt.datetime]:
        """Durably record a validated payload of `count` alerts, verbatim, before the webhook answers; return its
        inbox id and the time it was recorded."""

    async def pending(self) -> list[tuple[Delivery, WebhookAlert]]:
        """Return this replica's alerts whose processing has not finished, oldest first."""

    async def record(self, entries: Sequence[AuditEntry], done: Delivery | None = None) -> None:
        """Append the entries to the audit trail and, with `done`, mark that alert processed, atomically."""

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest audit entries first."""

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete what is older than the retention."""

    async def close(self) -> None:
        """Close connections once running calls have finished."""
