"""The product's promise, end to end: real Prometheus, Alertmanager, exporter, remediator and sandbox over
real PostgreSQL, Redis, RabbitMQ and dockerd. One test per scenario; every process is stopped after each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sandbox.profiles import PROFILES
from sandbox.scenarios import ALL_SCENARIOS, Scenario, run_scenario
from sandbox.stack import Stack, StackOptions, StackPorts, running_stack

from tests.prereqs import AMQP_URL, DOCKER_HOST, POSTGRES_ADMIN_DSN, require_binary, require_docker, require_tcp, unique

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    scenario: Scenario = request.param
    for program in ("prometheus", "prometheus-alertmanager", "redis-server"):
        require_binary(program)
    require_tcp(POSTGRES_ADMIN_DSN, 5432, "PostgreSQL")
    require_tcp(AMQP_URL, 5672, "RabbitMQ")
    docker_host = None
    if scenario.needs_docker:
        require_docker().close()
        docker_host = DOCKER_HOST
    options = StackOptions(
        run_dir=tmp_path / "stack",
        ports=StackPorts.free(PROFILES[scenario.profile]),
        profile=scenario.profile,
        postgres_admin_dsn=POSTGRES_ADMIN_DSN,
        database=unique("tradeops_e2e"),
        docker_host=docker_host,
        container_prefix=unique("tradeops-e2e") + "_",
    )
    try:
        async with running_stack(options) as running:
            yield running
        assert running.processes == {}, "every process is stopped"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("stack", ALL_SCENARIOS, ids=[s.name for s in ALL_SCENARIOS], indirect=True)
async def test_scenario_ends_as_the_runbook_says(stack: Stack, request: pytest.FixtureRequest) -> None:
    scenario: Scenario = request.node.callspec.params["stack"]
    lines: list[str] = []
    result = await run_scenario(stack, scenario, lines.append, budget_seconds=150)
    timeline = "\n".join(lines)
    assert result.ok, f"{scenario.name}: {result.problems}\n{timeline}"
    print(f"\n{scenario.name}:\n{timeline}")
