"""A replica (Redis state, PostgreSQL audit store) whose PostgreSQL stops, or whose Redis stops, mid-action, as real
processes: the authoritative Redis record is still written and its lock let go, the page of a failed action is
delivered exactly once when PostgreSQL is back, the read copy (console, read API) catches up with Redis, and it
never shows a state Redis does not have."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
import redis.asyncio
from aiohttp import web

from common.web import free_port
from tests.integration.test_remediator_replicas import (
    decisions,
    key_of,
    make_replicas,
    replica_config,
    run_replica,
    send,
    wait_lock_free,
)
from tests.processes import private_postgres, private_postgres_cluster, private_redis
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration


@dataclass
class Platform:
    """A platform whose action endpoint holds each call until released, then fails it (HTTP 500); and a pager."""

    url: str = ""
    calls: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    pages: list[dict[str, Any]] = field(default_factory=list)
    status: int = 500


@contextlib.asynccontextmanager
async def failing_platform(status: int = 500) -> AsyncIterator[Platform]:
    state = Platform(status=status)

    async def act(_request: web.Request) -> web.Response:
        state.calls += 1
        state.entered.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.release.wait(), 40)
        return web.json_response({"error": "still broken"} if state.status >= 400 else {}, status=state.status)

    async def page(request: web.Request) -> web.Response:
        state.pages.append(await request.json())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/platform/act/{slot}", act)
    app.router.add_post("/escalations", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


def outage_config(base: str, redis_url: str, prefix: str, dsn: str) -> dict[str, Any]:
    """One attempt, then a page (`action_failed`); the incident's lock lives 8 + 1 s unless renewed, shorter than
    the outages below, so a holder waiting for PostgreSQL keeps it only by renewing it."""
    config = replica_config(base, redis_url, prefix, dsn, timeout_seconds=8, escalate_after_minutes=60)
    config["rules"][0]["params"]["timeout_seconds"] = 6
    return config


async def redis_record(redis_url: str, key: str) -> dict[str, Any] | None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        raw = await client.get(key)
    finally:
        await client.aclose()
    found: dict[str, Any] | None = json.loads(raw) if raw is not None else None
    return found


async def listed(http: aiohttp.ClientSession, base: str, incident: str) -> dict[str, Any] | None:
    """The incident as the read API lists it (the read copy in the audit store), or None."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with http.get(f"{base}/api/v1/incidents/{quote(incident, safe='')}", headers=headers) as response:
        if response.status != 200:
            return None
        body = await response.json()
        shown: dict[str, Any] = body["incident"]
        return shown


async def eventually(check: Any, seconds: float) -> Any:
    """Poll an async check (bounded) until it returns something truthy; return its last answer."""
    answer = None
    for _ in range(int(seconds / 0.1)):
        answer = check()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return answer
        await asyncio.sleep(0.1)
    return answer


def triggers(pages: list[dict[str, Any]], incident: str) -> list[dict[str, Any]]:
    return [p for p in pages if p.get("incident") == incident and not p.get("resolved")]


async def test_postgres_stopped_mid_action_saves_redis_releases_the_lock_and_pages_once_when_it_is_back(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with private_postgres_cluster() as data, failing_platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            server.send_signal(signal.SIGINT)  # PostgreSQL stops while the action runs
            await server.wait()
            plat.release.set()  # the action fails while PostgreSQL is down
            await asyncio.sleep(12)  # PostgreSQL stays down longer than the lock's TTL (9 s)
            # The attempt stays claimed in Redis; the page waits for somewhere to be recorded.
            stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
            assert stored is not None
            assert stored["attempts"] == 1
            assert plat.pages == []
            async with private_postgres(data, port):
                # The authoritative record is written and the lock let go once the page is recorded.
                await wait_lock_free(redis_url, f"{prefix}:lock:{incident}")
                stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
                assert stored is not None
                assert stored["escalated"] is True, stored
                assert [h["outcome"] for h in stored["history"]] == ["failed"], stored["history"]
                pages = await eventually(lambda: triggers(plat.pages, incident), 25)
                assert [p["reason"] for p in pages] == ["action_failed"]
                shown = await eventually(
                    lambda: _escalated(listed(http, replica.url, incident)),
                    15,
                )
                assert shown, "the read copy never caught up with Redis"
                found = await decisions(dsn, key_of(raw))
                await asyncio.sleep(3)  # no second page comes later
                assert len(triggers(plat.pages, incident)) == 1
                connection = await asyncpg.connect(dsn)
                events = [
                    r["event"]
                    for r in await connection.fetch(
                        "SELECT event FROM tradeops_audit WHERE incident = $1 ORDER BY id", key_of(raw)
                    )
                ]
                await connection.close()
    assert found == [("replica-0", "executed")]
    assert plat.calls == 1
    assert "action" in events, events
    assert "escalated" in events, events


async def _escalated(pending: Any) -> bool:
    shown = await pending
    return shown is not None and bool(shown["escalated"])


async def test_a_save_redis_refuses_after_the_holder_was_paused_past_its_lock_leaves_the_read_copy_as_redis_has_it(
    tmp_path: Path, redis_url: str, postgres_dsn: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with failing_platform() as plat, aiohttp.ClientSession() as http:
        config = replica_config(plat.url, redis_url, prefix, postgres_dsn)  # lock TTL: 4 s deadline + 1 s margin
        (replica,) = make_replicas(tmp_path, 1, config)
        async with run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            assert replica.child is not None
            replica.child.send_signal(signal.SIGSTOP)  # paused mid-action (a stall, a VM migration) past its lock
            try:
                await asyncio.sleep(6.5)
            finally:
                replica.child.send_signal(signal.SIGCONT)
            # The deadline passed: the action failed, and its holder lets go of a lock it no longer has.
            await eventually(lambda: triggers(plat.pages, incident), 15)
            await asyncio.sleep(1)
            stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
            shown = await listed(http, replica.url, incident)
    assert stored is not None
    assert shown is not None
    # Redis refused the stale holder's save (fenced): the copy must not show what Redis does not have.
    assert (shown["escalated"], shown["attempts"]) == (stored["escalated"], stored["attempts"]), (shown, stored)
    assert plat.calls == 1


async def copied(dsn: str, key: str) -> dict[str, Any] | None:
    """The incident's read copy as the audit store holds it, or None."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow("SELECT record FROM tradeops_incident_records WHERE key = $1", key)
    finally:
        await connection.close()
    found: dict[str, Any] | None = json.loads(row["record"]) if row is not None else None
    return found


def postgres_processes(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer...): all of them, to hang the server."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


async def test_an_incident_saved_while_postgres_is_down_has_its_read_copy_caught_up_once_it_is_back(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with (
        private_postgres_cluster() as data,
        failing_platform(status=200) as plat,
        aiohttp.ClientSession() as http,
    ):
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            server.send_signal(signal.SIGINT)
            await server.wait()
            plat.release.set()  # the action succeeds while PostgreSQL is down: nothing to page, nothing to wait for
            await wait_lock_free(redis_url, f"{prefix}:lock:{incident}")  # saved in Redis, copy missed, let go
            await asyncio.sleep(3)
            async with private_postgres(data, port):
                stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
                assert stored is not None
                assert [h["outcome"] for h in stored["history"]] == ["ran"], stored
                caught_up = await eventually(lambda: _same(copied(dsn, incident), stored), 15)
                found = await decisions(dsn, key_of(raw))
    assert caught_up, "the read copy never caught up with Redis"
    assert found == [("replica-0", "executed")]
    assert plat.pages == []


async def _same(pending: Any, expected: dict[str, Any]) -> bool:
    return bool(await pending == expected)


async def test_postgres_hanging_mid_action_pages_once_and_leaves_redis_and_its_copy_alike_once_it_answers(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with private_postgres_cluster() as data, failing_platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            hung = postgres_processes(server.pid)
            for pid in hung:
                os.kill(pid, signal.SIGSTOP)  # PostgreSQL hangs: connections open, nothing answered
            try:
                plat.release.set()
                await asyncio.sleep(10)
                assert plat.pages == []
            finally:
                for pid in hung:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            pages = await eventually(lambda: triggers(plat.pages, incident), 25)
            await wait_lock_free(redis_url, f"{prefix}:lock:{incident}")
            stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
            assert stored is not None
            caught_up = await eventually(lambda: _same(copied(dsn, incident), stored), 15)
            await asyncio.sleep(3)  # no second page comes later
            found = await decisions(dsn, key_of(raw))
    assert [p["reason"] for p in pages] == ["action_failed"]
    assert len(triggers(plat.pages, incident)) == 1
    assert stored["escalated"] is True
    assert caught_up, "the read copy never caught up with Redis"
    assert found == [("replica-0", "executed")]


async def test_a_replica_stopped_while_its_page_waits_for_postgres_exits_and_pages_once_after_its_restart(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with private_postgres_cluster() as data, failing_platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            server.send_signal(signal.SIGINT)
            await server.wait()
            plat.release.set()  # the action fails; its page waits for PostgreSQL
            await asyncio.sleep(3)
            assert replica.child is not None
            replica.child.terminate()  # stopped while waiting: it must still exit, promptly
            await asyncio.wait_for(replica.child.wait(), 15)
        assert plat.pages == []
        async with private_postgres(data, port), run_replica(replica):  # it resumes the unfinished alert
            pages = await eventually(lambda: triggers(plat.pages, incident), 25)
            await asyncio.sleep(3)  # no second page comes later
            await wait_lock_free(redis_url, f"{prefix}:lock:{incident}")
            stored = await redis_record(redis_url, f"{prefix}:incident:{incident}")
    assert len(triggers(plat.pages, incident)) == 1, pages
    assert stored is not None
    assert stored["escalated"] is True
    assert plat.calls == 1


async def test_postgres_hanging_when_an_alert_arrives_answers_503_in_bounded_time_then_acts_once_it_answers(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    async with (
        private_postgres_cluster() as data,
        failing_platform(status=200) as plat,
        aiohttp.ClientSession() as http,
    ):
        plat.release.set()
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            hung = postgres_processes(server.pid)
            for pid in hung:
                os.kill(pid, signal.SIGSTOP)
            try:
                started = asyncio.get_running_loop().time()
                status = await asyncio.wait_for(send(http, replica, payload(raw)), 15)
                took = asyncio.get_running_loop().time() - started
            finally:
                for pid in hung:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            assert plat.calls == 0
            for _ in range(100):  # Alertmanager's retry
                if await send(http, replica, payload(raw)) == 200:
                    break
                await asyncio.sleep(0.2)
            found = await eventually(lambda: decisions(dsn, key_of(raw)), 15)
            await asyncio.sleep(1)
    # Not acknowledged while nothing could be recorded, and answered within Alertmanager's webhook timeout (10 s).
    assert status == 503
    assert took < 10, took
    assert found == [("replica-0", "executed")]
    assert plat.calls == 1


async def test_redis_stopped_mid_action_pages_and_the_read_copy_shows_only_what_redis_took(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    raw = alert(name="Race", slot="s1")
    incident = key_of(raw) + "#act"
    async with failing_platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, url, prefix, postgres_dsn))
        async with private_redis(tmp_path, redis_port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            server.terminate()  # Redis stops while the action runs
            await server.wait()
            plat.release.set()
            pages = await eventually(lambda: triggers(plat.pages, incident), 20)
            shown = await copied(postgres_dsn, incident)
            found = await eventually(lambda: decisions(postgres_dsn, key_of(raw)), 10)
    assert [p["reason"] for p in pages] == ["state_unavailable"]
    assert shown is not None
    assert (shown["attempts"], shown["escalated"], shown["history"]) == (1, False, [])  # the claim, as Redis took it
    assert [d for _, d in found] == ["executed", "state_unavailable"]
    assert plat.calls == 1


async def test_a_resolve_accepted_before_postgres_stopped_mid_action_closes_the_incident_and_its_page_once_back(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    raw = alert(name="Race", slot="s1")
    resolved = {**raw, "status": "resolved", "endsAt": "2026-11-22T04:00:00Z"}
    incident = key_of(raw) + "#act"
    async with private_postgres_cluster() as data, failing_platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, outage_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            assert await send(http, replica, payload(raw)) == 200
            await asyncio.wait_for(plat.entered.wait(), 15)
            assert await send(http, replica, payload(resolved)) == 200  # recorded; waits for the incident's lock
            server.send_signal(signal.SIGINT)
            await server.wait()
            plat.release.set()  # the action fails while PostgreSQL is down
            await asyncio.sleep(8)
            async with private_postgres(data, port):
                closed = await eventually(lambda: _closed(redis_record(redis_url, f"{prefix}:incident:{incident}")), 30)
                shown = await eventually(lambda: _closed(copied(dsn, incident)), 15)
                await asyncio.sleep(4)  # the sender's last round
                connection = await asyncpg.connect(dsn)
                pending = await connection.fetchval(
                    "SELECT count(*) FROM tradeops_escalation_outbox WHERE state = 'pending'"
                )
                await connection.close()
    assert closed, "the incident never closed in Redis"
    assert shown, "the read copy never showed it closed"
    mine = [p for p in plat.pages if p.get("incident") == incident]
    # No page left open: none, or the trigger followed by its resolve.
    assert [bool(p.get("resolved")) for p in mine] in ([], [False, True]), mine
    assert pending == 0
    assert plat.calls == 1


async def _closed(pending: Any) -> bool:
    found = await pending
    return found is not None and found.get("state") == "closed"
