"""Every dashboard query returns data from a real Prometheus scraping the real exporter, remediator and
node_exporter, which run against the sandbox of the dashboard's own system after a scenario has made its
remediator act: one stack per profile, each checking the dashboards tagged with that profile."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sandbox.scenarios import by_name, run_scenario
from sandbox.stack import Stack, running_stack

from tests.e2e.conftest import Servers
from tests.prereqs import require_binary

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# What Grafana puts in for "All" and for $__rate_interval; the window spans the whole short-lived stack.
SUBSTITUTIONS = {"$__rate_interval": "5m", "$job": ".+", "$instance": ".+"}
EMPTY_RETRIES = 30  # times a query without data is asked again, 2 s apart
# The scenario each system's stack runs first (none needs Docker), so the remediation panels show a real action.
SCENARIO = {
    "mastertrade": "collector-failed",
    "trademaster": "tm-circuit-breaker",
    "ai-trading-v1.1": "v11-pm2-memory-leak",
    "ai-trading": "ai-data-corruption",
}
# Panels over metrics the platform's own services export and the sandbox does not simulate: their queries are
# run (they must parse) but may come back empty. Each names a panel that exists (checked below).
NOT_SIMULATED = {
    ("ai-trading", "Trade execution p95"): "the sandbox's services execute no trades (trading_execution_seconds)",
    ("ai-trading", "Order fill rate"): "nor place orders (trading_orders_total)",
    ("ai-trading", "Queue depth"): "the ai-trading sandbox declares no queues; the shared broker may hold none",
    ("ai-trading-v1.1", "Log ingestion lag"): "Loki and promtail are not simulated (promtail_stream_lag_seconds)",
    ("mastertrade", "Container restarts"): "this stack runs no container (no Docker engine given) named mastertrade_*",
    ("ai-trading", "Container memory"): "this stack runs no container (no Docker engine given) named ai-trading-*",
}


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


def dashboards_of(system: str) -> list[tuple[str, dict[str, Any]]]:
    """The committed dashboards tagged with the system, by file name."""
    found = []
    for path in sorted((ROOT / "grafana_dashboards").glob("*.json")):
        document = json.loads(path.read_text())
        if system in document["tags"]:
            found.append((path.name, document))
    return found


@pytest.fixture(params=sorted(SCENARIO))
async def stack(request: pytest.FixtureRequest, tmp_path: Path, servers: Servers) -> AsyncIterator[Stack]:
    for program in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "redis-server"):
        require_binary(program)
    options = servers.stack_options(tmp_path / "stack", request.param, "tradeops_dash")
    try:
        async with running_stack(options) as running:
            yield running
    finally:
        await servers.drop_database(options.database)


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[Any] = body["data"]["result"]
    return result


def test_every_not_simulated_panel_exists_on_its_systems_dashboards() -> None:
    for system, title in NOT_SIMULATED:
        panels = {panel["title"] for _, document in dashboards_of(system) for panel in document["panels"]}
        assert title in panels, f"{system}: no panel {title!r}"


async def test_every_panel_query_and_variable_returns_data_after_a_remediation(stack: Stack) -> None:
    system = stack.options.profile
    result = await run_scenario(stack, by_name(SCENARIO[system]), budget_seconds=120)
    assert result.ok, result.problems
    prometheus = stack.urls()["prometheus"]
    documents = dashboards_of(system)
    assert len(documents) >= 3, f"{system} has no dashboard set"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        # A series can come late on a loaded machine (a command probe's next run, a rate's second sample): each
        # query that has no data yet is asked again, for a bounded time; data must come, however late.
        empty = await panels_without_data(http, prometheus, system, documents)
        for _ in range(EMPTY_RETRIES):
            if not empty:
                break
            await asyncio.sleep(2)
            empty = await panels_without_data(http, prometheus, system, documents, only=set(empty))
    assert empty == [], f"{system}: queries without data:\n" + "\n".join(empty)


async def panels_without_data(
    http: aiohttp.ClientSession,
    prometheus: str,
    system: str,
    documents: list[tuple[str, dict[str, Any]]],
    only: set[str] | None = None,
) -> list[str]:
    """Name every panel query and query variable of the dashboards that returns no data (of `only`, if given)."""
    empty: list[str] = []
    for name, dashboard in documents:
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                label = f"{name} / {panel['title']} / {target['expr']}"
                if (only is not None and label not in only) or (system, panel["title"]) in NOT_SIMULATED:
                    continue
                if not await query(http, prometheus, substitute(target["expr"])):
                    empty.append(label)
        for variable in dashboard["templating"]["list"]:
            label = f"{name} / variable {variable['name']}"
            if variable["type"] != "query" or (only is not None and label not in only):
                continue
            # label_values(METRIC{...}, LABEL) is Grafana's call of the label values API.
            inner = variable["definition"].removeprefix("label_values(").removesuffix(")")
            metric, _, label_name = inner.rpartition(",")
            async with http.get(
                f"{prometheus}/api/v1/label/{label_name.strip()}/values", params={"match[]": substitute(metric)}
            ) as response:
                values = (await response.json())["data"]
            if not values:
                empty.append(label)
    return empty
