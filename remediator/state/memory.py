"""The memory state backend (one replica): limits in this process, incidents in the audit store's table."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from remediator.config import RateLimit
from remediator.runtime.locks import KeyedLocks
from remediator.state.base import Admission, BreakerPolicy, Denial, Hold, IncidentStore
from remediator.state.incident import Incident


@dataclass
class TokenBucket:
    """`burst` tokens, refilled at `per_minute`."""

    rate: RateLimit
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def refill(self) -> float:
        """Bring the bucket up to date and return the tokens in it."""
        current = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(self.rate.burst)
        self.tokens = min(self.rate.burst, self.tokens + (current - self.updated) * self.rate.per_minute / 60)
        self.updated = current
        return self.tokens


@dataclass
class CircuitBreaker:
    """Opens after `failures` consecutive failures; allows one trial after `open_seconds`."""

    failures: int = 0
    opened_at: float | None = None

    def allows(self, open_seconds: float) -> bool:
        """Return whether an action may run now (closed, or half-open after the open period)."""
        return self.opened_at is None or time.monotonic() - self.opened_at >= open_seconds

    def record(self, ok: bool, policy: BreakerPolicy) -> None:
        """Record an action's outcome."""
        if ok:
            self.failures = 0
            self.opened_at = None
            return
        self.failures += 1
        if self.failures >= policy.failures:
            self.opened_at = time.monotonic()


@dataclass
class MemoryState:
    """All policy state of one remediator process; kept across config reloads. Each check-and-update runs
    without an await in between, so it is atomic on the event loop."""

    incidents: IncidentStore
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    spent: deque[float] = field(default_factory=deque)
    cooldowns: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    locks: KeyedLocks = field(default_factory=KeyedLocks)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, ttl_seconds: float) -> AsyncIterator[Hold]:
        """Serialise work on one incident in this process (the TTL matters only across processes)."""
        async with self.locks.hold(key):
            held = Hold(won=True, incident=await self.incidents.incident(key))
            yield held
            if held.save_on_release is not None:
                await self.incidents.save(held.save_on_release)

    async def open(self) -> None:
        """Nothing to open (Redis connects on first use)."""

    async def ping(self) -> None:
        """The memory backend is always reachable."""

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        return await self.incidents.incident(key)

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""
        await self.incidents.save(incident)

    async def due_escalations(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents whose escalation time has come."""
        return await self.incidents.due_escalations(at)

    def _remaining(self, actions_per_hour: int) -> int:
        cutoff = time.monotonic() - 3600
        while self.spent and self.spent[0] < cutoff:
            self.spent.popleft()
        return max(0, actions_per_hour - len(self.spent))

    async def admit(self, admission: Admission, consume: bool) -> Denial | None:
        """Check circuit, cooldown, rate and budget; with consume take all (no await in between: atomic)."""
        if not self._breaker(admission.breaker).allows(admission.breaker_open_seconds):
            return Denial.CIRCUIT
        last = self.cooldowns.get(admission.target)
        if last is not None and time.monotonic() - last < admission.cooldown_seconds:
            return Denial.COOLDOWN
        bucket = self.buckets.get(admission.rule)
        if bucket is None or bucket.rate != admission.rate:
            bucket = self.buckets[admission.rule] = TokenBucket(admission.rate)
        if consume and bucket.refill() < 1:
            return Denial.RATE
        if self._remaining(admission.actions_per_hour) <= 0:
            return Denial.BUDGET
        if consume:
            bucket.tokens -= 1
            self.spent.append(time.monotonic())
            self.cooldowns[admission.target] = time.monotonic()
        return None

    def _breaker(self, breaker: str) -> CircuitBreaker:
        return self.breakers.setdefault(breaker, CircuitBreaker())

    async def record_outcome(self, breaker: str, ok: bool, policy: BreakerPolicy) -> bool:
        """Record an outcome; return whether the circuit is now open."""
        circuit = self._breaker(breaker)
        circuit.record(ok, policy)
        return not circuit.allows(policy.open_seconds)

    async def budget_remaining(self, actions_per_hour: int) -> int:
        """Actions left in the trailing hour."""
        return self._remaining(actions_per_hour)

    async def prune(self, older_than: dt.datetime) -> None:
        """Closed incidents are pruned with the audit store that keeps them."""

    async def close(self) -> None:
        """Nothing to release."""
