"""Bounded exporter work: overlapping scrapes share one probe round, each answering at its own deadline; probe
concurrency has a bound; a gzip check past its deadline stops instead of running on in a thread."""

from __future__ import annotations

import asyncio
import threading
import zlib
from pathlib import Path

from exporter.config import ExporterSettings, load
from exporter.probes.base import Probe
from exporter.probeset import build_probe_set
from exporter.scrape import FailureCounts, scrape
from exporter.sink import MetricSink
from tests.exporter_helpers import parse, running_exporter, scrape_text, value, write_config


def gated_command(log: Path, release: Path) -> list[str]:
    """argv of a command that appends a line to log, waits until release exists, then prints 1."""
    script = f'echo run >> "{log}"; while [ ! -e "{release}" ]; do sleep 0.02; done; echo 1'
    return ["/bin/sh", "-c", script]


async def wait_until(condition: object, what: str) -> None:
    """Poll a zero-argument callable until it is true; fail (not hang) after a generous bound."""
    assert callable(condition)
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_overlapping_scrapes_share_one_round_so_a_command_probe_runs_once(tmp_path: Path) -> None:
    log, release = tmp_path / "runs", tmp_path / "release"
    config = write_config(
        tmp_path,
        {
            "command": [
                {"name": "counted", "argv": gated_command(log, release), "output": "number", "timeout_seconds": 20}
            ]
        },
    )
    async with running_exporter(config) as (url, exporter):
        scrapes = [asyncio.create_task(scrape_text(url, scrape_timeout=30)) for _ in range(5)]
        await wait_until(lambda: exporter.probe_set.in_flight == 5, "five scrapes in flight")
        release.touch()
        texts = await asyncio.gather(*scrapes)
    assert log.read_text().splitlines() == ["run"]
    for text in texts:
        samples = parse(text)
        assert value(samples, "tradeops_probe_success", probe="command", target="counted") == 1
        assert value(samples, "tradeops_command_value", command="counted", item="", field="value") == 1


async def test_a_short_scrape_during_a_long_round_answers_at_its_deadline_with_the_slow_probe_failed(
    tmp_path: Path,
) -> None:
    log, release = tmp_path / "runs", tmp_path / "release"
    config = write_config(
        tmp_path,
        {
            "command": [
                {"name": "slow", "argv": gated_command(log, release), "output": "number", "timeout_seconds": 20},
                {"name": "quick", "argv": ["/bin/echo", "2"], "output": "number"},
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        long_scrape = asyncio.create_task(scrape_text(url, scrape_timeout=30))
        await wait_until(log.exists, "the long round started the slow command")
        short = parse(await scrape_text(url, scrape_timeout=1))
        slow_still_running = not release.exists()
        release.touch()
        long = parse(await long_scrape)
    assert slow_still_running  # the short scrape answered before the slow probe could finish
    assert log.read_text().splitlines() == ["run"]  # it joined the long round rather than starting its own
    assert value(short, "tradeops_probe_success", probe="command", target="slow") == 0
    assert value(short, "tradeops_probe_failures_total", probe="command", target="slow", reason="timeout") == 1
    assert value(short, "tradeops_probe_success", probe="command", target="quick") == 1
    assert value(short, "tradeops_command_value", command="quick", item="", field="value") == 2
    assert value(long, "tradeops_probe_success", probe="command", target="slow") == 1
    assert value(long, "tradeops_command_value", command="slow", item="", field="value") == 1


class ConcurrencyProbe(Probe):
    """Notes how many probes of its group are collecting at once."""

    kind = "fake"

    def __init__(self, target: str, running: list[int], peak: list[int]) -> None:
        super().__init__(target, timeout_seconds=10)
        self.running = running
        self.peak = peak

    async def collect(self, sink: MetricSink) -> None:
        self.running[0] += 1
        self.peak[0] = max(self.peak[0], self.running[0])
        try:
            await asyncio.sleep(0.02)
        finally:
            self.running[0] -= 1


async def test_probe_concurrency_never_exceeds_the_bound() -> None:
    running, peak = [0], [0]
    probes = [ConcurrencyProbe(f"p{index}", running, peak) for index in range(40)]
    outcomes = await scrape(probes, budget=10, failures=FailureCounts())
    assert all(outcome.success for outcome in outcomes)
    assert peak[0] <= 16  # the default bound
    assert ExporterSettings().max_concurrent_probes == 16
    peak[0] = 0
    outcomes = await scrape(probes, budget=10, failures=FailureCounts(), max_concurrent=3)
    assert all(outcome.success for outcome in outcomes)
    assert peak[0] <= 3


async def test_the_configured_probe_concurrency_bounds_the_shared_rounds(tmp_path: Path) -> None:
    probe_set = build_probe_set(load(write_config(tmp_path, {}, max_concurrent_probes=4)))
    try:
        assert probe_set.rounds.max_concurrent == 4
    finally:
        await probe_set.close()


def write_slow_gzip(path: Path, gibibytes: int) -> None:
    """Write a small gzip file that inflates to `gibibytes` GiB of zeros (repeated full-flush deflate blocks)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = 16 << 20
    head = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    with path.open("wb") as handle:
        handle.write(head)
        for _ in range(gibibytes * 64):
            handle.write(segment)


async def test_a_gzip_check_past_its_deadline_leaves_no_thread_running(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    write_slow_gzip(backups / "db.sql.gz", gibibytes=10)
    config = write_config(
        tmp_path,
        {"backups": [{"name": "db", "path_glob": f"{backups}/*.gz", "integrity": "gzip", "timeout_seconds": 0.5}]},
    )
    async with running_exporter(config) as (url, _):
        before = threading.active_count()
        samples = parse(await scrape_text(url, scrape_timeout=5))
        assert value(samples, "tradeops_probe_success", probe="backup", target="db") == 0
        assert value(samples, "tradeops_probe_failures_total", probe="backup", target="db", reason="timeout") == 1
        await wait_until(lambda: threading.active_count() <= before, "the gzip check's thread ended")
