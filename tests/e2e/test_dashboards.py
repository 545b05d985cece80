"""Every dashboard query returns data from a real Prometheus scraping the real exporter and remediator, which
run against the sandbox after a scenario has made the remediator act."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from sandbox.scenarios import by_name, run_scenario
from sandbox.stack import Stack, StackOptions, StackPorts, running_stack

from tests.prereqs import AMQP_URL, POSTGRES_ADMIN_DSN, require_binary, require_tcp, unique

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# What Grafana puts in for "All" and for $__rate_interval; the window spans the whole short-lived stack.
SUBSTITUTIONS = {"$__rate_interval": "5m", "$job": ".+", "$instance": ".+"}


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    for program in ("prometheus", "prometheus-alertmanager", "redis-server"):
        require_binary(program)
    require_tcp(POSTGRES_ADMIN_DSN, 5432, "PostgreSQL")
    require_tcp(AMQP_URL, 5672, "RabbitMQ")
    options = StackOptions(
        run_dir=tmp_path / "stack",
        ports=StackPorts.free(),
        postgres_admin_dsn=POSTGRES_ADMIN_DSN,
        database=unique("tradeops_dash"),
        container_prefix=unique("tradeops-dash") + "_",
    )
    try:
        async with running_stack(options) as running:
            yield running
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)')
        await admin.close()


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{expr}: {body}"
    result: list[Any] = body["data"]["result"]
    return result


async def test_every_panel_query_and_variable_returns_data_after_a_remediation(stack: Stack) -> None:
    result = await run_scenario(stack, by_name("collector-failed"), budget_seconds=120)
    assert result.ok, result.problems
    prometheus = stack.urls()["prometheus"]
    empty: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for path in sorted((ROOT / "grafana_dashboards").glob("*.json")):
            dashboard = json.loads(path.read_text())
            for panel in dashboard["panels"]:
                for target in panel["targets"]:
                    if not await query(http, prometheus, substitute(target["expr"])):
                        empty.append(f"{path.name} / {panel['title']} / {target['expr']}")
            for variable in dashboard["templating"]["list"]:
                if variable["type"] != "query":
                    continue
                # label_values(METRIC{...}, LABEL) is Grafana's call of the label values API.
                inner = variable["definition"].removeprefix("label_values(").removesuffix(")")
                metric, _, label = inner.rpartition(",")
                async with http.get(
                    f"{prometheus}/api/v1/label/{label.strip()}/values", params={"match[]": substitute(metric)}
                ) as response:
                    values = (await response.json())["data"]
                if not values:
                    empty.append(f"{path.name} / variable {variable['name']}")
    assert empty == [], "queries without data:\n" + "\n".join(empty)
