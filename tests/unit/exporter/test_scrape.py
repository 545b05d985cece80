"""One scrape: every probe concurrently, the slowest of the last scrape first, outcomes in probe order."""

from __future__ import annotations

import asyncio

from exporter.probes.base import Probe, ProbeError
from exporter.scrape import FailureCounts, scrape
from exporter.sink import MetricSink


class RecordingProbe(Probe):
    """Sleeps for its delay; notes when it started in a list shared by the probes of one test."""

    kind = "fake"

    def __init__(self, target: str, delay: float, started: list[str], fails: bool = False) -> None:
        super().__init__(target, timeout_seconds=5)
        self.delay = delay
        self.started = started
        self.fails = fails

    async def collect(self, sink: MetricSink) -> None:
        self.started.append(self.target)
        await asyncio.sleep(self.delay)
        if self.fails:
            raise ProbeError("broken", "failed on purpose")
        sink.gauge("tradeops_fake", "A fake.", {"target": self.target}, self.delay)


async def test_the_probe_that_was_slowest_in_the_last_scrape_starts_first_and_outcomes_keep_probe_order() -> None:
    started: list[str] = []
    probes = [
        RecordingProbe("quick", 0.0, started),
        RecordingProbe("slow", 0.05, started),
        RecordingProbe("middling", 0.02, started, fails=True),
    ]
    first = await scrape(probes, budget=5, failures=FailureCounts())
    assert started == ["quick", "slow", "middling"]  # nothing measured yet: configuration order
    assert [outcome.probe.target for outcome in first] == ["quick", "slow", "middling"]
    started.clear()
    second = await scrape(probes, budget=5, failures=FailureCounts())
    assert started == ["slow", "middling", "quick"]
    assert [(outcome.probe.target, outcome.success) for outcome in second] == [
        ("quick", True),
        ("slow", True),
        ("middling", False),
    ]
