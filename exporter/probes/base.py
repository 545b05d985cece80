"""What a probe is, and the failures it can report."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from exporter.sink import MetricSink


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
