"""A service container's memory against the real Docker engine (seed 002, Memory Leaks): the containers probe
reads a real container's usage and its own limit from one-shot stats, and the sandbox's memory_leak fault grows
one ai-trading service's container until a restart of that container clears it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import docker
import pytest
from sandbox.app import Sandbox
from sandbox.containers import MEMORY_LIMIT_BYTES

from exporter.config import ContainersConfig
from exporter.probes.containers import ContainersProbe
from exporter.scrape import FailureCounts, run_probe
from remediator.actions.docker_restart import DockerRestartAction, DockerRestartParams
from tests.integration.test_sandbox_chaos import sandbox_settings
from tests.prereqs import DOCKER_HOST, TEST_IMAGE, unique

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]


async def memory_of(prefix: str) -> tuple[dict[str, float], dict[str, float]]:
    """One run of the containers probe (memory on) over the containers named prefix*: usage and limit by name."""
    config = ContainersConfig(name="engine", docker_host=DOCKER_HOST, include=(f"{prefix}.*",), memory=True)
    probe = ContainersProbe(config, max_bytes=4 * MIB)
    try:
        outcome = await run_probe(probe, config.timeout_seconds, FailureCounts())
    finally:
        await probe.close()
    assert outcome.success, outcome.reason

    def by_name(metric: str) -> dict[str, float]:
        family = outcome.sink.families.get(metric)
        return {} if family is None else {labels[0]: value for labels, value in family.samples.items()}

    return by_name("tradeops_container_memory_usage_bytes"), by_name("tradeops_container_memory_limit_bytes")


async def test_the_probe_reads_a_real_containers_memory_and_reports_only_a_limit_of_its_own(
    docker_client: docker.DockerClient,
) -> None:
    prefix = unique("tradeops-test-mem")
    limited = docker_client.containers.run(
        TEST_IMAGE, SLEEPER, name=f"{prefix}_limited", detach=True, mem_limit="64m", memswap_limit="64m"
    )
    unlimited = docker_client.containers.run(TEST_IMAGE, SLEEPER, name=f"{prefix}_unlimited", detach=True)
    stopped = docker_client.containers.create(TEST_IMAGE, ["true"], name=f"{prefix}_stopped", mem_limit="64m")
    try:
        started = time.perf_counter()
        usage, limit = await memory_of(prefix)
        elapsed = time.perf_counter() - started
    finally:
        for container in (limited, unlimited, stopped):
            container.remove(force=True)
    assert limit == {f"{prefix}_limited": 64 * MIB}  # the unlimited one: the engine's figure is the host's
    assert set(usage) == {f"{prefix}_limited", f"{prefix}_unlimited"}  # a stopped container has no usage
    assert 0 < usage[f"{prefix}_limited"] < 16 * MIB  # a shell and a sleep
    assert elapsed < 2  # one-shot: at the engine's next 1 s tick, both at once; without it, 2 s each
    print(f"two containers' stats read in {elapsed:.3f} s; usage {usage}")


@pytest.fixture
async def ai_trading(
    postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path, docker_client: docker.DockerClient
) -> AsyncIterator[tuple[Sandbox, str]]:
    """An ai-trading sandbox whose trade executor is a real container of a unique name, removed afterwards."""
    name = unique("tradeops-test-ai-trade-executor")
    settings = sandbox_settings(
        postgres_dsn,
        redis_url,
        amqp_url,
        tmp_path,
        "ai-trading",
        docker_host=DOCKER_HOST,
        containers={"trade_executor": name},
        image=TEST_IMAGE,
    )
    box = Sandbox(settings)
    await box.start()
    try:
        yield box, name
    finally:
        await box.stop()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(name)


async def inject(box: Sandbox, fault: str, body: object) -> tuple[int, object]:
    async with aiohttp.ClientSession() as http, http.post(f"{box.urls()['chaos']}/{fault}", json=body) as response:
        return response.status, await response.json()


async def active(box: Sandbox) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(box.urls()["chaos"]) as response:
        return [f"{item['fault']}:{item['target']}" for item in (await response.json())["active"]]


async def test_the_memory_leak_fault_grows_one_service_containers_memory_until_a_restart_clears_it(
    ai_trading: tuple[Sandbox, str], docker_client: docker.DockerClient
) -> None:
    box, name = ai_trading
    usage, limit = await memory_of(name)
    assert limit == {name: MEMORY_LIMIT_BYTES}  # the sandbox gives its containers a limit, so they are watched
    before = usage[name]
    status, body = await inject(
        box, "memory_leak", {"service": "trade_executor", "mib_per_second": 32, "up_to_mib": 160}
    )
    assert status == 201, body
    seen = [before]
    started = time.perf_counter()
    while seen[-1] < 150 * MIB:
        assert time.perf_counter() - started < 30, f"the leak did not grow: {seen}"
        await asyncio.sleep(0.5)
        usage, _ = await memory_of(name)
        seen.append(usage[name])
    grew_in = time.perf_counter() - started
    assert seen[-1] < MEMORY_LIMIT_BYTES
    assert sum(later > earlier for earlier, later in itertools.pairwise(seen)) >= 2  # it grew step by step
    assert await active(box) == ["memory_leak:trade_executor"]
    assert docker_client.containers.get(name).status == "running"  # grown, not OOM-killed

    neighbour = docker_client.containers.run(TEST_IMAGE, SLEEPER, name=f"{name}-neighbour", detach=True)
    action = DockerRestartAction(DOCKER_HOST)
    try:
        neighbour.reload()
        neighbour_start = neighbour.attrs["State"]["StartedAt"]
        # restart-leaking-service's step: the remediator's docker_restart of the one container the alert names
        result = await action.run(DockerRestartParams(container=name, mode="restart", wait_seconds=30), {})
        neighbour.reload()
        assert neighbour.attrs["State"]["StartedAt"] == neighbour_start  # nothing else restarted
    finally:
        neighbour.remove(force=True)
        await action.close()
    print(f"docker_restart: {result}")
    usage, _ = await memory_of(name)
    assert usage[name] < 16 * MIB
    assert await active(box) == []
    await asyncio.sleep(2)
    usage, _ = await memory_of(name)
    assert usage[name] < 16 * MIB  # nothing regrows it
    after = usage[name] / MIB
    print(f"leak: {before / MIB:.1f} MiB -> {seen[-1] / MIB:.1f} MiB in {grew_in:.1f} s; restarted: {after:.1f} MiB")


async def test_the_memory_leak_fault_needs_a_known_service_with_a_container(ai_trading: tuple[Sandbox, str]) -> None:
    box, _ = ai_trading
    assert (await inject(box, "memory_leak", {"service": "no_such"}))[0] == 422
    assert (await inject(box, "memory_leak", {"service": "scheduler"}))[0] == 409  # no container of its own
    assert (await inject(box, "memory_leak", {"service": "trade_executor", "mib_per_second": 0}))[0] == 422
    assert await active(box) == []
