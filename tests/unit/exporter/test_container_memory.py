"""The containers probe's memory figures (seed 002, Memory Leaks: `monitor_system.sh --memory-threshold 80`): what
it reads from a stats answer, and what a hostile engine (garbage, a huge body, missing fields, a hang, a refused
socket) makes of it: no bogus value, and at worst probe_success 0 for that probe."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from common.web import free_port
from exporter.config import ContainersConfig
from exporter.probes.containers import INSPECT_CONCURRENCY, ContainersProbe, memory_figures
from exporter.scrape import FailureCounts, ProbeOutcome, run_probe

MIB = 1024 * 1024
V1_STATS = {  # cgroup v1 (Debian's dockerd here): the page cache the kernel can drop is total_inactive_file
    "memory_stats": {
        "usage": 300 * MIB,
        "stats": {"total_inactive_file": 20 * MIB, "inactive_file": 5 * MIB},
        "limit": 512 * MIB,
    }
}
V2_STATS = {"memory_stats": {"usage": 300 * MIB, "stats": {"inactive_file": 20 * MIB}, "limit": 512 * MIB}}


def inspection(memory: object = 512 * MIB) -> dict[str, Any]:
    return {
        "RestartCount": 0,
        "State": {"Running": True, "OOMKilled": False, "StartedAt": "2026-12-02T05:00:00.123456789Z"},
        "HostConfig": {"Memory": memory},
    }


@pytest.mark.parametrize(
    ("stats", "configured", "expected"),
    [
        (V1_STATS, 512 * MIB, (280 * MIB, 512 * MIB)),  # docker stats' MEM USAGE: usage less the inactive file cache
        (V2_STATS, 512 * MIB, (280 * MIB, 512 * MIB)),
        ({"memory_stats": {"usage": 10, "stats": {"inactive_file": 50}, "limit": 100}}, 100, (10, 100)),
        ({"memory_stats": {"usage": 10, "limit": 100}}, 100, (10, 100)),  # no breakdown: the usage as it is
        # No limit of its own: the engine reports the host's memory as the limit; the probe reports none.
        (V1_STATS, 0, (280 * MIB, None)),
        (V1_STATS, None, (280 * MIB, None)),
        (V1_STATS, "512m", (280 * MIB, None)),
        ({"memory_stats": {}}, 512 * MIB, (None, None)),  # a container that stopped before its stats were read
        ({}, 512 * MIB, (None, None)),
        ({"memory_stats": "lots"}, 512 * MIB, (None, None)),
        ({"memory_stats": {"usage": "300", "limit": 512}}, 512, (None, 512)),
        ({"memory_stats": {"usage": True, "limit": 512}}, 512, (None, 512)),
        ({"memory_stats": {"usage": -1, "limit": 512}}, 512, (None, 512)),
        ({"memory_stats": {"usage": math.nan, "limit": math.inf}}, 512, (None, None)),
        ({"memory_stats": {"usage": 10, "limit": 0}}, 512, (10, None)),
        ({"memory_stats": {"usage": 10, "stats": {"inactive_file": "x"}, "limit": 100}}, 100, (10, 100)),
        ({"memory_stats": {"usage": 10, "stats": [1, 2], "limit": 100}}, 100, (10, 100)),
        ([1, 2, 3], 100, (None, None)),
    ],
)
def test_memory_figures_are_the_usage_less_inactive_cache_and_the_containers_own_limit_never_a_bogus_value(
    stats: object, configured: object, expected: tuple[float | None, float | None]
) -> None:
    assert memory_figures(stats, configured) == expected


Route = Callable[[web.Request], Any]


@contextlib.asynccontextmanager
async def engine(stats: Route, listing: object = None, inspect: object = None) -> AsyncIterator[dict[str, int]]:
    """A loopback stand-in for the Engine API with two running containers and one stopped; `stats` answers every
    stats request. Yields counters: stats requests seen, and the most in flight at once."""
    seen = {"stats": 0, "in_flight": 0, "max_in_flight": 0}
    containers = listing or [
        {"Id": "a1", "Names": ["/ai-trading-a"], "State": "running"},
        {"Id": "b2", "Names": ["/ai-trading-b"], "State": "running"},
        {"Id": "c3", "Names": ["/ai-trading-c"], "State": "exited"},
    ]

    async def listing_handler(request: web.Request) -> web.Response:
        return web.json_response(containers)

    async def inspect_handler(request: web.Request) -> web.Response:
        return web.json_response(inspect or inspection())

    async def stats_handler(request: web.Request) -> Any:
        seen["stats"] += 1
        seen["in_flight"] += 1
        seen["max_in_flight"] = max(seen["max_in_flight"], seen["in_flight"])
        try:
            return await stats(request)
        finally:
            seen["in_flight"] -= 1

    app = web.Application()
    app.router.add_get("/containers/json", listing_handler)
    app.router.add_get("/containers/{id}/json", inspect_handler)
    app.router.add_get("/containers/{id}/stats", stats_handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    seen["port"] = port
    try:
        yield seen
    finally:
        await runner.cleanup()


async def collect(port: int, memory: bool = True, timeout: float = 2.0, **more: Any) -> ProbeOutcome:
    config = ContainersConfig(
        name="engine", docker_host=f"tcp://127.0.0.1:{port}", timeout_seconds=timeout, memory=memory, **more
    )
    probe = ContainersProbe(config, max_bytes=4 * MIB)
    try:
        return await run_probe(probe, timeout + 1, FailureCounts())
    finally:
        await probe.close()


def samples(outcome: ProbeOutcome, name: str) -> dict[str, float]:
    family = outcome.sink.families.get(name)
    return {} if family is None else {labels[0]: value for labels, value in family.samples.items()}


def answer(body: object) -> Route:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body)

    return handler


async def test_each_running_containers_memory_and_limit_are_read_with_one_shot_stats() -> None:
    queries: list[dict[str, str]] = []

    async def stats(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        return web.json_response(V1_STATS)

    async with engine(stats) as seen:
        outcome = await collect(seen["port"])
    assert outcome.success
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {
        "ai-trading-a": 280 * MIB,
        "ai-trading-b": 280 * MIB,
    }
    assert samples(outcome, "tradeops_container_memory_limit_bytes") == {
        "ai-trading-a": 512 * MIB,
        "ai-trading-b": 512 * MIB,
    }
    assert seen["stats"] == 2  # the stopped container is not asked
    assert queries == [{"stream": "false", "one-shot": "true"}] * 2  # one sample, no second one a second later
    assert set(samples(outcome, "tradeops_container_running")) == {"ai-trading-a", "ai-trading-b", "ai-trading-c"}


async def test_memory_is_not_read_unless_configured() -> None:
    async with engine(answer(V1_STATS)) as seen:
        outcome = await collect(seen["port"], memory=False)
    assert outcome.success
    assert seen["stats"] == 0
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {}


async def test_a_container_without_a_limit_reports_its_usage_and_no_limit() -> None:
    async with engine(answer(V1_STATS), inspect=inspection(memory=0)) as seen:
        outcome = await collect(seen["port"])
    assert outcome.success
    assert samples(outcome, "tradeops_container_memory_usage_bytes")["ai-trading-a"] == 280 * MIB
    assert samples(outcome, "tradeops_container_memory_limit_bytes") == {}


async def test_stats_without_memory_figures_leave_the_series_out_and_the_probe_succeeds() -> None:
    async with engine(answer({"memory_stats": {}, "read": "0001-01-01T00:00:00Z"})) as seen:
        outcome = await collect(seen["port"])
    assert outcome.success
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {}
    assert samples(outcome, "tradeops_container_memory_limit_bytes") == {}
    assert len(samples(outcome, "tradeops_container_running")) == 3


async def test_a_container_gone_before_its_stats_is_left_out() -> None:
    async def gone(request: web.Request) -> web.Response:
        if request.match_info["id"] == "a1":
            return web.json_response({"message": "No such container"}, status=404)
        return web.json_response(V1_STATS)

    async with engine(gone) as seen:
        outcome = await collect(seen["port"])
    assert outcome.success
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {"ai-trading-b": 280 * MIB}


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 200, "bad_json"),
        (b"[1, 2]", 200, "bad_json"),
        (b'{"pad": "' + b"x" * (2 * MIB) + b'"}', 200, "too_large"),  # past the stats answer's own bound
        (b'{"message": "engine error"}', 500, "http_status"),
    ],
)
async def test_a_hostile_stats_answer_fails_the_probe_with_no_value(body: bytes, status: int, reason: str) -> None:
    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="application/json")

    async with engine(stats) as seen:
        outcome = await collect(seen["port"])
    assert not outcome.success
    assert outcome.reason == reason
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {}
    assert samples(outcome, "tradeops_container_running") == {}


async def test_a_hanging_stats_call_is_cut_off_at_the_probes_timeout() -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response(V1_STATS)

    async with engine(hang) as seen:
        started = asyncio.get_running_loop().time()
        outcome = await collect(seen["port"], timeout=0.5)
        elapsed = asyncio.get_running_loop().time() - started
    assert not outcome.success
    assert outcome.reason == "timeout"
    assert elapsed < 1.5
    assert samples(outcome, "tradeops_container_memory_usage_bytes") == {}


async def test_a_refused_socket_fails_the_probe_as_a_connection_failure() -> None:
    outcome = await collect(free_port())
    assert not outcome.success
    assert outcome.reason == "connection"


async def test_stats_calls_are_concurrency_limited_and_only_for_the_capped_containers() -> None:
    listing = [{"Id": f"id{n:03d}", "Names": [f"/ai-trading-{n:03d}"], "State": "running"} for n in range(40)]

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.json_response(V2_STATS)

    async with engine(slow, listing=listing) as seen:
        outcome = await collect(seen["port"], max_containers=30)
    assert outcome.success
    assert seen["stats"] == 30
    assert 1 < seen["max_in_flight"] <= INSPECT_CONCURRENCY
    assert len(samples(outcome, "tradeops_container_memory_usage_bytes")) == 30
    assert outcome.sink.dropped_series == 10
