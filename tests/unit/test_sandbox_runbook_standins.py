"""The sandbox's stand-ins for three runbook checks: seed 000's Grafana and Monitoring UI on :3000, seed 002's
data collector /data/status, seed 003's nightly full backup; each answers as the real one and can be faulted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from sandbox import backups
from sandbox.app import Sandbox
from sandbox.chaos import Chaos
from sandbox.faults import BackupSetParams, MarketDataStaleParams, ServiceParams
from sandbox.services import build_service_app
from sandbox.settings import SandboxSettings

from tests.processes import served


async def no_reconcile() -> None:
    """Stands in for the sandbox's reconcile: these tests serve one service themselves, on a free port."""


def sandbox(profile: str, tmp_path: Path) -> Sandbox:
    """A sandbox of the profile, not started (its services are served one at a time below, never on their
    runbook ports), whose chaos API does not reconcile."""
    box = Sandbox(SandboxSettings(profile=profile, backup_root=tmp_path / "backups"))
    box.chaos = Chaos(box.ctx, after_change=no_reconcile)
    return box


@asynccontextmanager
async def serving(box: Sandbox, service: str) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    async with served(build_service_app(box.ctx, service)) as url, aiohttp.ClientSession() as session:
        yield url, session


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url, allow_redirects=False) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def test_grafana_answers_api_health_as_grafana_does_until_faulted_unhealthy(tmp_path: Path) -> None:
    box = sandbox("mastertrade", tmp_path)
    async with serving(box, "grafana") as (base, session):
        status, body = await get(session, f"{base}/api/health")
        assert status == 200
        assert isinstance(body, dict)
        assert body["database"] == "ok"
        assert body["version"]
        await box.chaos.inject("service_unhealthy", ServiceParams(service="grafana"))
        status, body = await get(session, f"{base}/api/health")
        assert (status, body["database"] if isinstance(body, dict) else body) == (503, "failing")
        assert (await get(session, f"{base}/login"))[0] == 503


async def test_the_monitoring_ui_sends_an_anonymous_client_to_its_login_page_which_answers_200(
    tmp_path: Path,
) -> None:
    box = sandbox("mastertrade", tmp_path)
    async with serving(box, "grafana") as (base, session):
        async with session.get(f"{base}/", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/login"
        assert (await get(session, f"{base}/login"))[0] == 200


async def test_the_data_collectors_last_update_advances_and_the_fault_freezes_it(tmp_path: Path) -> None:
    box = sandbox("ai-trading", tmp_path)
    async with serving(box, "data_collector") as (base, session):
        status, body = await get(session, f"{base}/data/status")
        assert status == 200
        assert isinstance(body, dict)
        assert body["status"] == "ok"
        assert time.time() - body["last_update"] < 5
        await box.chaos.inject("market_data_stale", MarketDataStaleParams(stale_seconds=120))
        first = (await get(session, f"{base}/data/status"))[1]
        assert isinstance(first, dict)
        assert 119 < time.time() - first["last_update"] < 125
        second = (await get(session, f"{base}/data/status"))[1]
        assert isinstance(second, dict)
        assert second["last_update"] == first["last_update"]  # frozen: it no longer advances
        assert [f.fault.name for f in await box.chaos.active()] == ["market_data_stale"]
        await box.chaos.clear_all()
        fresh = (await get(session, f"{base}/data/status"))[1]
        assert isinstance(fresh, dict)
        assert time.time() - fresh["last_update"] < 5


async def test_the_trademaster_full_backup_can_go_missing_and_be_restored(tmp_path: Path) -> None:
    box = sandbox("trademaster", tmp_path)
    backups.write_backup(tmp_path / "backups", "postgres_full")
    await box.chaos.inject("backup_missing", BackupSetParams(set="postgres_full"))
    assert backups.backup_files(tmp_path / "backups", "postgres_full") == []
    await box.chaos.clear_all()
    (restored,) = backups.backup_files(tmp_path / "backups", "postgres_full")
    assert restored.parent == tmp_path / "backups/postgresql/full"
