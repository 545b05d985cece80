"""One scrape: every probe at once, each under its own timeout inside the scrape's budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.logs import log_event
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink, merge

logger = logging.getLogger("exporter.scrape")


@dataclass
class ProbeOutcome:
    """What one probe produced in one scrape."""

    probe: Probe
    sink: MetricSink
    success: bool
    duration: float
    reason: str | None


@dataclass
class FailureCounts:
    """Probe failures by (probe, target, reason), kept across scrapes for the _total counter."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(self, probe: Probe, reason: str) -> None:
        """Count one failure."""
        key = (probe.kind, probe.target, reason)
        self.counts[key] = self.counts.get(key, 0) + 1


def classify(error: BaseException) -> str:
    """Map an exception escaping a probe to a bounded failure reason."""
    if isinstance(error, ProbeError):
        return error.reason
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionError | OSError):
        return "connection"
    return "error"


async def run_probe(probe: Probe, budget: float, failures: FailureCounts) -> ProbeOutcome:
    """Run one probe under min(its timeout, budget); never raises."""
    sink = MetricSink()
    started = time.perf_counter()
    reason: str | None = None
    try:
        async with asyncio.timeout(min(probe.timeout_seconds, budget)):
            await probe.collect(sink)
        reason = sink.failure
    except Exception as error:  # noqa: BLE001 - a probe's failure is a labelled metric, never a failed scrape
        reason = classify(error)
        sink = MetricSink()
        probe.on_failure(sink)
        log_event(
            logger,
            logging.WARNING,
            "probe_failed",
            probe=probe.kind,
            target=probe.target,
            reason=reason,
            error=str(error) or repr(error),
        )
    if reason is not None:
        failures.add(probe, reason)
    duration = time.perf_counter() - started
    probe.last_duration_seconds = duration
    return ProbeOutcome(probe, sink, reason is None, duration, reason)


async def scrape(probes: Sequence[Probe], budget: float, failures: FailureCounts) -> list[ProbeOutcome]:
    """Run every probe concurrently and return each outcome, in probe order. The probes that took longest in
    the last scrape start first: a scrape lasts as long as its slowest probe, whose request then goes out
    before the others' work, not after it."""
    order = sorted(range(len(probes)), key=lambda index: -probes[index].last_duration_seconds)
    results = await asyncio.gather(*(run_probe(probes[index], budget, failures) for index in order))
    by_index = dict(zip(order, results, strict=True))
    return [by_index[index] for index in range(len(probes))]


@dataclass(eq=False)
class ScrapeCollector(Collector):
    """A prometheus_client collector over one finished scrape (registered in a per-request registry)."""

    outcomes: list[ProbeOutcome]
    failures: FailureCounts

    def collect(self) -> Iterator[Metric]:
        """Yield the probes' metrics followed by tradeops_probe_* for every probe and target."""
        yield from merge([outcome.sink for outcome in self.outcomes])
        success = GaugeMetricFamily(
            "tradeops_probe_success",
            "1 when the probe measured its target in this scrape, else 0.",
            labels=["probe", "target"],
        )
        duration = GaugeMetricFamily(
            "tradeops_probe_duration_seconds", "How long the probe took in this scrape.", labels=["probe", "target"]
        )
        dropped = GaugeMetricFamily(
            "tradeops_probe_series_dropped",
            "Series the probe left out in this scrape because of its max_series cap.",
            labels=["probe", "target"],
        )
        for outcome in self.outcomes:
            labels = [outcome.probe.kind, outcome.probe.target]
            success.add_metric(labels, 1.0 if outcome.success else 0.0)
            duration.add_metric(labels, outcome.duration)
            dropped.add_metric(labels, float(outcome.sink.dropped_series))
        yield success
        yield duration
        yield dropped
        yield _counter_family(self.failures)


def _counter_family(failures: FailureCounts) -> Metric:
    family = CounterMetricFamily(
        "tradeops_probe_failures",
        "Probe failures since the exporter started, by reason.",
        labels=["probe", "target", "reason"],
    )
    for (kind, target, reason), count in sorted(failures.counts.items()):
        family.add_metric([kind, target, reason], float(count))
    return family
