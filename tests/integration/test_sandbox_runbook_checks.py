"""The shipped exporter targets of three runbook checks, as the stacks retarget them, against a running sandbox:
seed 000's Grafana and Monitoring UI, seed 003's nightly full backup, seed 002's market-data freshness; each
read healthy, then faulted through the chaos API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest
from sandbox.app import Sandbox
from sandbox.faults import BackupSetParams, MarketDataStaleParams, ServiceParams
from sandbox.profiles import PROFILES
from sandbox.settings import SandboxSettings
from sandbox.stack import Stack, StackOptions, StackPorts

from common.web import free_port
from tests.exporter_helpers import scrape_probes, value
from tests.prereqs import DOCKER_HOST, TEST_IMAGE, unique

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def sandbox_and_probes(
    profile: str, kinds: tuple[str, ...], postgres_dsn: str, tmp_path: Path
) -> AsyncIterator[tuple[Sandbox, dict[str, Any]]]:
    """A started sandbox on a stack's free ports, and the shipped probes of these kinds pointed at it as the
    stack points them (Stack.exporter_config)."""
    stack = Stack(StackOptions(run_dir=tmp_path / "stack", ports=StackPorts.free(PROFILES[profile]), profile=profile))
    probes = stack.exporter_config()["probes"]
    box = Sandbox(
        SandboxSettings(
            profile=profile,
            ports=stack.options.ports.services,
            control_port=free_port(),
            postgres_dsn=postgres_dsn,
            backup_root=stack.backup_root,
        )
    )
    await box.start()
    try:
        yield box, {kind: probes[kind] for kind in kinds}
    finally:
        await box.chaos.clear_all()
        await box.stop()


async def test_grafana_and_the_monitoring_ui_are_up_then_down_when_faulted(tmp_path: Path, postgres_dsn: str) -> None:
    async with sandbox_and_probes("mastertrade", ("service_health",), postgres_dsn, tmp_path) as (box, probes):
        probes["service_health"] = [t for t in probes["service_health"] if t["name"] in {"grafana", "monitoring_ui"}]
        healthy = await scrape_probes(tmp_path, probes)
        await box.chaos.inject("service_unhealthy", ServiceParams(service="grafana"))
        unhealthy = await scrape_probes(tmp_path, probes)
    for service in ("grafana", "monitoring_ui"):
        assert value(healthy, "tradeops_service_up", service=service, criticality="medium") == 1
        assert value(unhealthy, "tradeops_service_up", service=service, criticality="medium") == 0
    assert value(unhealthy, "tradeops_service_http_status", service="grafana") == 503


async def test_the_trademaster_full_backup_is_read_then_missing_when_faulted(tmp_path: Path, postgres_dsn: str) -> None:
    async with sandbox_and_probes("trademaster", ("backups",), postgres_dsn, tmp_path) as (box, probes):
        present = await scrape_probes(tmp_path, probes)
        await box.chaos.inject("backup_missing", BackupSetParams(set="postgres_full"))
        missing = await scrape_probes(tmp_path, probes)
    assert value(present, "tradeops_backup_files", set="postgres_full") == 1
    assert value(present, "tradeops_backup_newest_intact", set="postgres_full") == 1
    assert time.time() - value(present, "tradeops_backup_newest_timestamp_seconds", set="postgres_full") < 3600
    assert value(missing, "tradeops_backup_files", set="postgres_full") == 0


async def test_the_collectors_last_update_is_fresh_then_frozen_past_the_rpo(tmp_path: Path, postgres_dsn: str) -> None:
    async with sandbox_and_probes("ai-trading", ("service_health",), postgres_dsn, tmp_path) as (box, probes):
        probes["service_health"] = [t for t in probes["service_health"] if t["name"] == "data_collector_status"]
        fresh = await scrape_probes(tmp_path, probes)
        await box.chaos.inject("market_data_stale", MarketDataStaleParams(stale_seconds=120))
        frozen = await scrape_probes(tmp_path, probes)
    labels = {"service": "data_collector_status", "field": "last_update_timestamp"}
    assert time.time() - value(fresh, "tradeops_service_value", **labels) < 10
    assert time.time() - value(frozen, "tradeops_service_value", **labels) > 60  # the RPO's minute
    assert value(frozen, "tradeops_service_up", service="data_collector_status", criticality="critical") == 1


async def last_update(base: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/data/status") as response:
        body = await response.json()
    return float(body["last_update"])


async def test_a_restart_of_the_collectors_container_resumes_collection_and_nothing_else_does(
    tmp_path: Path, postgres_dsn: str, docker_client: docker.DockerClient
) -> None:
    # Seed 002, Missing Market Data step 4: restarting data collection is the fix the playbook applies.
    name = unique("tradeops-test-collector")
    (port,) = [free_port()]
    box = Sandbox(
        SandboxSettings(
            profile="ai-trading",
            ports={"data_collector": port},
            control_port=free_port(),
            postgres_dsn=postgres_dsn,
            backup_root=tmp_path / "backups",
            docker_host=DOCKER_HOST,
            containers={"data_collector": name},
            image=TEST_IMAGE,
        )
    )
    await box.start()
    try:
        base = box.urls()["data_collector"]
        await box.chaos.inject("market_data_stale", MarketDataStaleParams(stale_seconds=120))
        await asyncio.sleep(1.5)  # three reconciles: no restart, still frozen
        assert time.time() - await last_update(base) > 60
        docker_client.containers.get(name).restart(timeout=1)  # what docker_restart does
        for _ in range(40):
            if time.time() - await last_update(base) < 10:
                break
            await asyncio.sleep(0.25)
        assert time.time() - await last_update(base) < 10
        assert [f.fault.name for f in await box.chaos.active()] == []
    finally:
        await box.chaos.clear_all()
        await box.stop()
