"""The v1.1 sandbox's PM2 host and rate gate (seed 004, Common Troubleshooting): a process whose memory grows
until `pm2 restart` of that one process frees it, and a provider whose quota is spent until its own reset."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sandbox.app import Sandbox
from sandbox.faults import ProcessParams, ProviderParams
from sandbox.pm2_services import MIB

from tests.exporter_helpers import Samples, scrape_probes, value
from tests.integration.test_sandbox_chaos import active_faults, eventually, inject, running, sandbox_settings
from tests.integration.test_sandbox_runbook_checks import sandbox_and_probes

pytestmark = pytest.mark.integration


@pytest.fixture
async def v11(postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path, "ai-trading-v1.1")) as box:
        yield box


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def standin(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the host command stand-in as the exporter and the remediator do: a separate process."""
    argv = [sys.executable, "-m", "sandbox.standins", "--state-dir", str(box.ctx.standin_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def jlist(box: Sandbox) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in json.loads(standin(box, "jlist").stdout)}


async def test_v11_memory_leak_grows_one_processes_memory_until_pm2_restarts_that_process(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    before = jlist(v11)
    assert set(before) == {"trading-engine", "rate-gate", "market-data-worker"}
    baseline = {name: p["monit"]["memory"] for name, p in before.items()}
    assert all(memory > 0 for memory in baseline.values())
    assert (await inject(http, v11, "pm2_memory_leak", {"process": "no-such"}))[0] == 422
    assert (await inject(http, v11, "pm2_memory_leak", {"process": "market-data-worker"}))[0] == 201

    async def grown() -> bool:
        return bool(jlist(v11)["market-data-worker"]["monit"]["memory"] > 2 * baseline["market-data-worker"])

    await eventually(grown)
    now = jlist(v11)
    assert now["trading-engine"]["monit"]["memory"] == baseline["trading-engine"]  # only the leaking one grows
    restarted = standin(v11, "pm2-restart", "market-data-worker")
    assert restarted.returncode == 0, restarted.stderr

    async def freed() -> bool:
        process = jlist(v11)["market-data-worker"]
        return bool(
            process["monit"]["memory"] == baseline["market-data-worker"] and process["pm2_env"]["restart_time"] == 1
        )

    await eventually(freed)
    assert await active_faults(http, v11) == []
    assert {name: p["pm2_env"]["restart_time"] for name, p in jlist(v11).items()} == {
        "trading-engine": 0,
        "rate-gate": 0,
        "market-data-worker": 1,
    }


async def test_v11_engine_reports_its_node_heap_at_api_metrics_memory_and_it_grows_with_its_leak(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    engine = v11.urls()["trading_engine"]

    async def heap() -> dict[str, Any]:
        async with http.get(f"{engine}/api/metrics/memory") as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    first = await heap()
    assert {"rss", "heapTotal", "heapUsed", "external"} <= set(first)
    assert 0 < first["heapUsed"] <= first["heapTotal"] <= first["rss"]
    assert first["rss"] == jlist(v11)["trading-engine"]["monit"]["memory"]
    assert (await inject(http, v11, "pm2_memory_leak", {"process": "trading-engine"}))[0] == 201

    async def larger() -> bool:
        return bool((await heap())["heapUsed"] > 2 * first["heapUsed"])

    await eventually(larger)


async def test_v11_provider_quota_exhausted_shows_in_status_and_only_that_providers_reset_restores_it(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    gate = v11.urls()["rate_gate"]

    async def providers() -> dict[str, dict[str, Any]]:
        async with http.get(f"{gate}/status") as response:
            body = await response.json()
        return {p["name"]: p for p in body["providers"]}

    healthy = await providers()
    assert {"alphavantage", "polygon"} <= set(healthy)
    assert all(0 < p["remaining"] <= p["limit"] for p in healthy.values())
    assert (await inject(http, v11, "provider_quota_exhausted", {"provider": "no-such"}))[0] == 422
    assert (await inject(http, v11, "provider_quota_exhausted", {"provider": "alphavantage"}))[0] == 201
    spent = await providers()
    assert spent["alphavantage"]["remaining"] == 0
    assert spent["polygon"] == healthy["polygon"]
    async with http.post(f"{gate}/reset/no-such") as response:
        assert response.status == 404
    async with http.post(f"{gate}/reset/polygon") as response:
        assert response.status == 200
    assert (await providers())["alphavantage"]["remaining"] == 0  # another provider's reset leaves it spent
    async with http.post(f"{gate}/reset/alphavantage") as response:
        assert response.status == 200
        assert (await response.json())["remaining"] == healthy["alphavantage"]["limit"]
    assert (await providers())["alphavantage"]["remaining"] == healthy["alphavantage"]["limit"]
    assert await active_faults(http, v11) == []


async def test_v11_the_whole_gates_reset_restores_every_providers_quota(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    gate = v11.urls()["rate_gate"]
    assert (await inject(http, v11, "provider_quota_exhausted", {"provider": "polygon"}))[0] == 201
    async with http.post(f"{gate}/reset") as response:
        assert response.status == 200
    assert await active_faults(http, v11) == []


@contextlib.asynccontextmanager
async def shipped_probes(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, dict[str, Any]]]:
    """A v1.1 sandbox on a stack's ports, and the shipped profile's PM2 and rate gate probes pointed at it as the
    stack points them (Stack.exporter_config: `pm2 jlist` becomes the stand-in)."""
    kinds = ("command", "service_health")
    async with sandbox_and_probes("ai-trading-v1.1", kinds, postgres_dsn, tmp_path) as (box, probes):
        yield (
            box,
            {
                "command": [p for p in probes["command"] if p["name"] == "pm2_jlist"],
                "service_health": [p for p in probes["service_health"] if p["name"] == "rate_gate"],
            },
        )


async def test_the_shipped_profile_reads_each_processs_memory_and_each_providers_quota_from_the_sandbox(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with shipped_probes(postgres_dsn, tmp_path) as (box, probes):
        healthy = await scrape_probes(tmp_path, probes)
        await box.chaos.inject("provider_quota_exhausted", ProviderParams(provider="alphavantage"))
        await box.chaos.inject("pm2_memory_leak", ProcessParams(process="rate-gate"))
        await eventually(lambda: _leaked(box))
        faulted = await scrape_probes(tmp_path, probes)

    def memory(samples: Samples, process: str) -> float:
        return value(samples, "tradeops_command_value", command="pm2_jlist", item=process, field="memory")

    def quota(samples: Samples, provider: str, field: str) -> float:
        return value(samples, "tradeops_service_item_value", service="rate_gate", item=provider, field=field)

    assert memory(healthy, "trading-engine") == 180 * MIB
    assert memory(healthy, "rate-gate") == 64 * MIB
    assert memory(faulted, "rate-gate") > 64 * MIB
    assert memory(faulted, "trading-engine") == 180 * MIB
    assert (quota(healthy, "alphavantage", "remaining"), quota(healthy, "alphavantage", "limit")) == (400, 500)
    assert quota(faulted, "alphavantage", "remaining") == 0
    assert quota(faulted, "polygon", "remaining") == 4000
    for samples in (healthy, faulted):
        assert value(samples, "tradeops_probe_success", probe="command", target="pm2_jlist") == 1
        assert value(samples, "tradeops_probe_success", probe="service_health", target="rate_gate") == 1


async def _leaked(box: Sandbox) -> bool:
    listed = {p["name"]: p for p in json.loads((box.ctx.standin_dir / "pm2.json").read_text())}
    return bool(listed["rate-gate"]["monit"]["memory"] > 64 * MIB)
