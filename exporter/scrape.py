"""Probe rounds: every probe at once (at most max_concurrent_probes running), each under its own timeout inside the
round's deadline; scrapes that overlap share one round and each stops waiting at its own deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.logs import log_event
from exporter.config import DEFAULT_MAX_CONCURRENT_PROBES
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


async def run_probe(
    probe: Probe,
    budget: float,
    failures: FailureCounts,
    slots: asyncio.Semaphore | None = None,
) -> ProbeOutcome:
    """Run one probe under min(its timeout, budget), the wait for one of the slots included; never raises."""
    sink = MetricSink()
    started = time.perf_counter()
    reason: str | None = None
    try:
        async with asyncio.timeout(budget):
            if slots is None:
                await _collect(probe, sink)
            else:
                async with slots:
                    started = time.perf_counter()
                    await _collect(probe, sink)
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


async def _collect(probe: Probe, sink: MetricSink) -> None:
    async with asyncio.timeout(probe.timeout_seconds):
        await probe.collect(sink)


class Round:
    """One run of every probe, started now and bounded by its budget; any number of scrapes may wait for it.

    The probes that took longest in the last round start first: a round lasts as long as its slowest probe, whose
    request then goes out before the others' work, not after it. At most `max_concurrent` probes run at once; a
    probe waiting for its turn counts against the round's budget."""

    def __init__(
        self,
        probes: Sequence[Probe],
        budget: float,
        failures: FailureCounts,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT_PROBES,
    ) -> None:
        self.probes = list(probes)
        self.failures = failures
        self.started = time.perf_counter()
        self.deadline = asyncio.get_running_loop().time() + budget
        self._outcomes: list[ProbeOutcome | None] = [None] * len(self.probes)
        slots = asyncio.Semaphore(max_concurrent)
        order = sorted(range(len(self.probes)), key=lambda index: -self.probes[index].last_duration_seconds)
        self._tasks = [asyncio.create_task(self._run(index, slots)) for index in order]
        self._done = asyncio.Event()
        self._finisher = asyncio.create_task(self._finish())

    async def _run(self, index: int, slots: asyncio.Semaphore) -> None:
        budget = max(0.0, self.deadline - asyncio.get_running_loop().time())
        self._outcomes[index] = await run_probe(self.probes[index], budget, self.failures, slots)

    async def _finish(self) -> None:
        await asyncio.gather(*self._tasks)
        self._done.set()

    @property
    def finished(self) -> bool:
        """Whether every probe of the round has its outcome."""
        return self._done.is_set()

    async def outcomes(self, deadline: float | None = None) -> list[ProbeOutcome]:
        """Wait for the round, or until deadline (event-loop time), whichever is first, and return one outcome per
        probe in probe order: a probe still running at the deadline is probe_success 0 with reason timeout for
        this caller (and counted as such), while the round goes on for the others. Never raises on a timeout."""
        if not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._done.wait()
        return [outcome or self._cut_off(index) for index, outcome in enumerate(self._outcomes)]

    def _cut_off(self, index: int) -> ProbeOutcome:
        probe = self.probes[index]
        sink = MetricSink()
        probe.on_failure(sink)
        self.failures.add(probe, "timeout")
        log_event(logger, logging.WARNING, "probe_failed", probe=probe.kind, target=probe.target, reason="timeout")
        return ProbeOutcome(probe, sink, False, time.perf_counter() - self.started, "timeout")

    async def wait_finished(self) -> None:
        """Wait until every probe of the round is done (bounded by the round's budget)."""
        await asyncio.shield(self._finisher)


@dataclass
class SharedRounds:
    """Single flight: a scrape that arrives while a round runs waits for that round instead of starting its own."""

    probes: Sequence[Probe]
    max_concurrent: int = DEFAULT_MAX_CONCURRENT_PROBES
    _current: Round | None = field(default=None, init=False)

    async def outcomes(self, budget: float, failures: FailureCounts) -> list[ProbeOutcome]:
        """Return one outcome per probe within budget seconds: from the round in progress if there is one (a probe
        it has not finished by this scrape's deadline is a timeout here), else from a new round bounded by budget."""
        current = self._current
        if current is None or current.finished:
            # the round's own probe timeouts end at this scrape's deadline: waiting for them counts each once
            self._current = Round(self.probes, budget, failures, self.max_concurrent)
            return await self._current.outcomes()
        return await current.outcomes(asyncio.get_running_loop().time() + budget)

    async def wait_idle(self) -> None:
        """Wait until the round in progress, if any, is done."""
        if self._current is not None:
            await self._current.wait_finished()


async def scrape(
    probes: Sequence[Probe],
    budget: float,
    failures: FailureCounts,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT_PROBES,
) -> list[ProbeOutcome]:
    """Run every probe in a round of its own (at most max_concurrent at once) and return each outcome, in probe
    order, within budget seconds."""
    return await Round(probes, budget, failures, max_concurrent).outcomes()


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
