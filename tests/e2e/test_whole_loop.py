"""The product's promise, end to end: real Prometheus, Alertmanager, exporter, remediator and sandbox over
real PostgreSQL, Redis, RabbitMQ and dockerd. One test per scenario; every process is stopped after each."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox.scenarios import ALL_SCENARIOS, Scenario, run_scenario
from sandbox.stack import Stack, Timings, running_stack

from tests.e2e.conftest import Servers
from tests.prereqs import DOCKER_HOST, require_binary, require_docker

pytestmark = pytest.mark.e2e


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest, servers: Servers) -> AsyncIterator[Stack]:
    scenario: Scenario = request.param
    for program in ("prometheus", "prometheus-alertmanager", "redis-server"):
        require_binary(program)
    docker_host = None
    if scenario.needs_docker:
        require_docker().close()
        docker_host = DOCKER_HOST
    timings = Timings()
    if scenario.verify_within_seconds is not None:
        timings = dataclasses.replace(timings, verify_within_seconds=scenario.verify_within_seconds)
    options = servers.stack_options(
        tmp_path / "stack", scenario.profile, "tradeops_e2e", docker_host=docker_host, timings=timings
    )
    try:
        async with running_stack(options) as running:
            yield running
        assert running.processes == {}, "every process is stopped"
    finally:
        await servers.drop_database(options.database)


@pytest.mark.parametrize("stack", ALL_SCENARIOS, ids=[s.name for s in ALL_SCENARIOS], indirect=True)
async def test_scenario_ends_as_the_runbook_says(stack: Stack, request: pytest.FixtureRequest) -> None:
    scenario: Scenario = request.node.callspec.params["stack"]
    lines: list[str] = []
    result = await run_scenario(stack, scenario, lines.append, budget_seconds=150)
    timeline = "\n".join(lines)
    assert result.ok, f"{scenario.name}: {result.problems}\n{timeline}"
    print(f"\n{scenario.name}:\n{timeline}")
