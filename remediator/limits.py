"""The memory state backend: token buckets, the hourly budget, cooldowns and circuit breakers."""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from dataclasses import dataclass, field

from remediator.config import MaintenanceWindow, RateLimit


@dataclass
class TokenBucket:
    """`burst` tokens, refilled at `per_minute`."""

    rate: RateLimit
    tokens: float = -1.0
    updated: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        """Take one token if there is one."""
        current = time.monotonic()
        if self.tokens < 0:
            self.tokens = float(self.rate.burst)
        self.tokens = min(self.rate.burst, self.tokens + (current - self.updated) * self.rate.per_minute / 60)
        self.updated = current
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; allows one trial after `open_seconds`."""

    threshold: int
    open_seconds: float
    failures: int = 0
    opened_at: float | None = None

    def allows(self) -> bool:
        """Return whether an action may run now (closed, or half-open after the open period)."""
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.open_seconds

    @property
    def is_open(self) -> bool:
        """Whether the breaker is open (and not yet half-open)."""
        return not self.allows()

    def record(self, ok: bool) -> None:
        """Record an action's outcome."""
        if ok:
            self.failures = 0
            self.opened_at = None
            return
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = time.monotonic()


@dataclass
class MemoryLimits:
    """All limit state of one remediator process (the memory backend); kept across config reloads."""

    actions_per_hour: int
    breaker_failures: int
    breaker_open_seconds: float
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    spent: deque[float] = field(default_factory=deque)
    cooldowns: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def reconfigure(self, actions_per_hour: int, breaker_failures: int, breaker_open_seconds: float) -> None:
        """Apply new global bounds without forgetting what was spent."""
        self.actions_per_hour = actions_per_hour
        self.breaker_failures = breaker_failures
        self.breaker_open_seconds = breaker_open_seconds

    def budget_remaining(self) -> int:
        """Actions left in the trailing hour."""
        cutoff = time.monotonic() - 3600
        while self.spent and self.spent[0] < cutoff:
            self.spent.popleft()
        return max(0, self.actions_per_hour - len(self.spent))

    def spend_budget(self) -> bool:
        """Spend one action of the hourly budget if any is left."""
        if self.budget_remaining() <= 0:
            return False
        self.spent.append(time.monotonic())
        return True

    def take_token(self, rule: str, rate: RateLimit) -> bool:
        """Take a token from the rule's bucket."""
        bucket = self.buckets.get(rule)
        if bucket is None or bucket.rate != rate:
            bucket = self.buckets[rule] = TokenBucket(rate)
        return bucket.take()

    def in_cooldown(self, target: str, minutes: float) -> bool:
        """Whether an action ran on this target less than `minutes` ago."""
        last = self.cooldowns.get(target)
        return last is not None and time.monotonic() - last < minutes * 60

    def start_cooldown(self, target: str) -> None:
        """Remember that an action ran on this target now."""
        self.cooldowns[target] = time.monotonic()

    def breaker(self, action: str) -> CircuitBreaker:
        """Return the action's circuit breaker."""
        found = self.breakers.get(action)
        if found is None:
            found = self.breakers[action] = CircuitBreaker(self.breaker_failures, self.breaker_open_seconds)
        return found


def in_window(window: MaintenanceWindow, at: dt.datetime) -> bool:
    """Return whether a UTC time falls in a recurring maintenance window."""
    at = at.astimezone(dt.UTC)
    start = dt.time.fromisoformat(window.start)
    end = dt.time.fromisoformat(window.end)
    if window.weekday is not None and at.weekday() != WEEKDAY_INDEX[window.weekday]:
        return False
    if window.nth_of_month is not None and (at.day - 1) // 7 + 1 != window.nth_of_month:
        return False
    current = at.time()
    if start == end:
        return True  # a whole day (e.g. every day of a weekday window)
    return start <= current < end if start < end else current >= start or current < end


WEEKDAY_INDEX = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}
