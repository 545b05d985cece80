"""What a probe is, and the failures it can report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from exporter.config import alternation
from exporter.sink import MetricSink


class NameFilter:
    """Include and exclude patterns (RE2, full match) over names: queues, containers. Each name's decision is kept
    (names are the same scrape after scrape: 10,000 queues cost 10,000 dict lookups instead of 20,000 RE2 calls),
    at most `memo_limit` of them: past that the memo starts afresh, so churning names cannot grow it."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...], memo_limit: int = 100_000) -> None:
        # One alternation per list: a name is matched once per list, not once per pattern.
        self.include = alternation(include)
        self.exclude = alternation(exclude)
        self.memo_limit = memo_limit
        self._memo: dict[str, bool] = {}

    def allows(self, name: str) -> bool:
        """Return whether a name is reported."""
        known = self._memo.get(name)
        if known is None:
            known = self._decide(name)
            if len(self._memo) >= self.memo_limit:
                self._memo.clear()
            self._memo[name] = known
        return known

    def _decide(self, name: str) -> bool:
        if self.include is not None and not self.include.fullmatch(name):
            return False
        return self.exclude is None or not self.exclude.fullmatch(name)


class ProbeError(Exception):
    """A probe could not measure its target; `reason` is a short, bounded label value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Probe(ABC):
    """One probe instance: a kind (the `probe` label), a target name, a timeout and long-lived clients."""

    kind: ClassVar[str]

    def __init__(self, target: str, timeout_seconds: float) -> None:
        self.target = target
        self.timeout_seconds = timeout_seconds
        self.last_duration_seconds = 0.0  # of its latest scrape: the slowest probes start first in the next

    @abstractmethod
    async def collect(self, sink: MetricSink) -> None:
        """Measure the target and record samples; raise ProbeError (or let a client error escape) on failure."""

    def on_failure(self, sink: MetricSink) -> None:
        """Record what a failure means for this probe's own metrics (default: nothing)."""
        return

    async def close(self) -> None:
        """Release long-lived clients (pools, connections)."""
        return
