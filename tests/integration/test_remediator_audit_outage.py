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
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
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
    Replica,
    decisions,
    key_of,
    make_replicas,
    replica_config,
    run_replica,
    send,
    serve_platform,
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

    async with serve_platform(act, state.pages, state.release) as url:
        state.url = url
        yield state


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


async def rows(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """What a query returns from the audit store, on a connection of its own."""
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


async def copied(dsn: str, key: str) -> dict[str, Any] | None:
    """The incident's read copy as the audit store holds it, or None."""
    found = await rows(dsn, "SELECT record FROM tradeops_incident_records WHERE key = $1", key)
    record: dict[str, Any] | None = json.loads(found[0]["record"]) if found else None
    return record


@dataclass
class Outage:
    """One test's stand: the Race alert (slot s1) and its incident under a Redis key prefix of its own, the failing
    platform, one replica (not started) and its audit store; on a private PostgreSQL, its cluster and port."""

    redis_url: str
    prefix: str
    raw: dict[str, Any]
    dsn: str
    plat: Platform
    http: aiohttp.ClientSession
    replica: Replica
    data: Path | None
    port: int

    @property
    def key(self) -> str:
        return key_of(self.raw)

    @property
    def incident(self) -> str:
        return self.key + "#act"

    def postgres(self) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
        """Run the private PostgreSQL (on the same port and data each time) until the block ends."""
        assert self.data is not None
        return private_postgres(self.data, self.port)

    async def act(self) -> None:
        """Send the alert (acknowledged) and wait until its action is running on the platform."""
        assert await send(self.http, self.replica, payload(self.raw)) == 200
        await asyncio.wait_for(self.plat.entered.wait(), 15)

    async def stored(self) -> dict[str, Any] | None:
        """The incident's authoritative record in Redis, or None."""
        return await redis_record(self.redis_url, f"{self.prefix}:incident:{self.incident}")

    async def lock_free(self) -> None:
        await wait_lock_free(self.redis_url, f"{self.prefix}:lock:{self.incident}")

    def triggers(self) -> list[dict[str, Any]]:
        """The incident's pages so far, resolves left out."""
        return triggers(self.plat.pages, self.incident)

    async def paged(self, seconds: float) -> list[dict[str, Any]]:
        """The incident's pages once there is one (bounded)."""
        found: list[dict[str, Any]] = await eventually(self.triggers, seconds)
        return found


@contextlib.asynccontextmanager
async def outage(
    tmp_path: Path,
    redis_url: str,
    *,
    dsn: str | None = None,
    status: int = 500,
    config: Callable[[str, str, str, str], dict[str, Any]] = outage_config,
) -> AsyncIterator[Outage]:
    """The stand of one test; without a dsn, on a fresh private PostgreSQL cluster that the test starts and stops
    (Outage.postgres)."""
    prefix = "{tradeops-outage-" + uuid.uuid4().hex[:12] + "}"
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        data = None
        if dsn is None:
            data = await stack.enter_async_context(private_postgres_cluster())
            dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        plat = await stack.enter_async_context(failing_platform(status))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        (replica,) = make_replicas(tmp_path, 1, config(plat.url, redis_url, prefix, dsn))
        yield Outage(redis_url, prefix, alert(name="Race", slot="s1"), dsn, plat, http, replica, data, port)


async def stop(server: asyncio.subprocess.Process) -> None:
    """Stop PostgreSQL with a fast shutdown and wait until it is gone."""
    server.send_signal(signal.SIGINT)
    await server.wait()


def postgres_processes(postmaster: int) -> list[int]:
    """The postmaster and its children (backends, checkpointer, WAL writer...): all of them, to hang the server."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


@contextlib.contextmanager
def hung(server: asyncio.subprocess.Process) -> Iterator[None]:
    """PostgreSQL hangs until the block ends: every one of its processes stopped, connections open, nothing
    answered."""
    processes = postgres_processes(server.pid)
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_postgres_stopped_mid_action_saves_redis_releases_the_lock_and_pages_once_when_it_is_back(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url) as o, o.postgres() as server, run_replica(o.replica):
        await o.act()
        await stop(server)  # PostgreSQL stops while the action runs
        o.plat.release.set()  # the action fails while PostgreSQL is down
        await asyncio.sleep(12)  # PostgreSQL stays down longer than the lock's TTL (9 s)
        # The attempt stays claimed in Redis; the page waits for somewhere to be recorded.
        stored = await o.stored()
        assert stored is not None
        assert stored["attempts"] == 1
        assert o.plat.pages == []
        # What TradeopsAuditStoreUnavailable reads: the replica's own metrics still answer, and count the refusals.
        async with o.http.get(f"{o.replica.url}/metrics") as response:
            assert response.status == 200
            exposed = await response.text()
        [retries] = [
            line for line in exposed.splitlines() if line.startswith("tradeops_remediator_audit_write_retries_total ")
        ]
        assert float(retries.split()[1]) >= 1, retries
        async with o.postgres():
            # The authoritative record is written and the lock let go once the page is recorded.
            await o.lock_free()
            stored = await o.stored()
            assert stored is not None
            assert stored["escalated"] is True, stored
            assert [h["outcome"] for h in stored["history"]] == ["failed"], stored["history"]
            pages = await o.paged(25)
            assert [p["reason"] for p in pages] == ["action_failed"]
            shown = await eventually(lambda: _escalated(listed(o.http, o.replica.url, o.incident)), 15)
            assert shown, "the read copy never caught up with Redis"
            found = await decisions(o.dsn, o.key)
            await asyncio.sleep(3)  # no second page comes later
            assert len(o.triggers()) == 1
            query = "SELECT event FROM tradeops_audit WHERE incident = $1 ORDER BY id"
            events = [r["event"] for r in await rows(o.dsn, query, o.key)]
    assert found == [("replica-0", "executed")]
    assert o.plat.calls == 1
    assert "action" in events, events
    assert "escalated" in events, events


async def _escalated(pending: Any) -> bool:
    shown = await pending
    return shown is not None and bool(shown["escalated"])


async def test_a_save_redis_refuses_after_the_holder_was_paused_past_its_lock_leaves_the_read_copy_as_redis_has_it(
    tmp_path: Path, redis_url: str, postgres_dsn: str
) -> None:
    # The lock's TTL: the rule's 4 s deadline + 1 s margin.
    async with outage(tmp_path, redis_url, dsn=postgres_dsn, config=replica_config) as o, run_replica(o.replica):
        await o.act()
        assert o.replica.child is not None
        o.replica.child.send_signal(signal.SIGSTOP)  # paused mid-action (a stall, a VM migration) past its lock
        try:
            await asyncio.sleep(6.5)
        finally:
            o.replica.child.send_signal(signal.SIGCONT)
        # The deadline passed: the action failed, and its holder lets go of a lock it no longer has.
        await o.paged(15)
        await asyncio.sleep(1)
        stored = await o.stored()
        shown = await listed(o.http, o.replica.url, o.incident)
    assert stored is not None
    assert shown is not None
    # Redis refused the stale holder's save (fenced): the copy must not show what Redis does not have.
    assert (shown["escalated"], shown["attempts"]) == (stored["escalated"], stored["attempts"]), (shown, stored)
    assert o.plat.calls == 1


async def test_an_incident_saved_while_postgres_is_down_has_its_read_copy_caught_up_once_it_is_back(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url, status=200) as o, o.postgres() as server, run_replica(o.replica):
        await o.act()
        await stop(server)
        o.plat.release.set()  # the action succeeds while PostgreSQL is down: nothing to page, nothing to wait for
        await o.lock_free()  # saved in Redis, copy missed, let go
        await asyncio.sleep(3)
        async with o.postgres():
            stored = await o.stored()
            assert stored is not None
            assert [h["outcome"] for h in stored["history"]] == ["ran"], stored
            caught_up = await eventually(lambda: _same(copied(o.dsn, o.incident), stored), 15)
            found = await decisions(o.dsn, o.key)
    assert caught_up, "the read copy never caught up with Redis"
    assert found == [("replica-0", "executed")]
    assert o.plat.pages == []


async def _same(pending: Any, expected: dict[str, Any]) -> bool:
    return bool(await pending == expected)


async def test_postgres_hanging_mid_action_pages_once_and_leaves_redis_and_its_copy_alike_once_it_answers(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url) as o, o.postgres() as server, run_replica(o.replica):
        await o.act()
        with hung(server):
            o.plat.release.set()
            await asyncio.sleep(10)
            assert o.plat.pages == []
        pages = await o.paged(25)
        await o.lock_free()
        stored = await o.stored()
        assert stored is not None
        caught_up = await eventually(lambda: _same(copied(o.dsn, o.incident), stored), 15)
        await asyncio.sleep(3)  # no second page comes later
        found = await decisions(o.dsn, o.key)
    assert [p["reason"] for p in pages] == ["action_failed"]
    assert len(o.triggers()) == 1
    assert stored["escalated"] is True
    assert caught_up, "the read copy never caught up with Redis"
    assert found == [("replica-0", "executed")]


async def test_a_replica_stopped_while_its_page_waits_for_postgres_exits_and_pages_once_after_its_restart(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url) as o:
        async with o.postgres() as server, run_replica(o.replica):
            await o.act()
            await stop(server)
            o.plat.release.set()  # the action fails; its page waits for PostgreSQL
            await asyncio.sleep(3)
            assert o.replica.child is not None
            o.replica.child.terminate()  # stopped while waiting: it must still exit, promptly
            await asyncio.wait_for(o.replica.child.wait(), 15)
        assert o.plat.pages == []
        async with o.postgres(), run_replica(o.replica):  # it resumes the unfinished alert
            pages = await o.paged(25)
            await asyncio.sleep(3)  # no second page comes later
            await o.lock_free()
            stored = await o.stored()
    assert len(o.triggers()) == 1, pages
    assert stored is not None
    assert stored["escalated"] is True
    assert o.plat.calls == 1


async def test_postgres_hanging_when_an_alert_arrives_answers_503_in_bounded_time_then_acts_once_it_answers(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url, status=200) as o:
        o.plat.release.set()
        async with o.postgres() as server, run_replica(o.replica):
            with hung(server):
                started = asyncio.get_running_loop().time()
                status = await asyncio.wait_for(send(o.http, o.replica, payload(o.raw)), 15)
                took = asyncio.get_running_loop().time() - started
            assert o.plat.calls == 0
            for _ in range(100):  # Alertmanager's retry
                if await send(o.http, o.replica, payload(o.raw)) == 200:
                    break
                await asyncio.sleep(0.2)
            found = await eventually(lambda: decisions(o.dsn, o.key), 15)
            await asyncio.sleep(1)
    # Not acknowledged while nothing could be recorded, and answered within Alertmanager's webhook timeout (10 s).
    assert status == 503
    assert took < 10, took
    assert found == [("replica-0", "executed")]
    assert o.plat.calls == 1


async def test_redis_stopped_mid_action_pages_and_the_read_copy_shows_only_what_redis_took(
    tmp_path: Path, postgres_dsn: str
) -> None:
    redis_port = free_port()
    async with (
        outage(tmp_path, f"redis://127.0.0.1:{redis_port}/0", dsn=postgres_dsn) as o,
        private_redis(tmp_path, redis_port) as server,
        run_replica(o.replica),
    ):
        await o.act()
        server.terminate()  # Redis stops while the action runs
        await server.wait()
        o.plat.release.set()
        pages = await o.paged(20)
        shown = await copied(o.dsn, o.incident)
        found = await eventually(lambda: decisions(o.dsn, o.key), 10)
    assert [p["reason"] for p in pages] == ["state_unavailable"]
    assert shown is not None
    assert (shown["attempts"], shown["escalated"], shown["history"]) == (1, False, [])  # the claim, as Redis took it
    assert [d for _, d in found] == ["executed", "state_unavailable"]
    assert o.plat.calls == 1


async def test_a_resolve_accepted_before_postgres_stopped_mid_action_closes_the_incident_and_its_page_once_back(
    tmp_path: Path, redis_url: str
) -> None:
    async with outage(tmp_path, redis_url) as o:
        resolved = {**o.raw, "status": "resolved", "endsAt": "2026-11-22T04:00:00Z"}
        async with o.postgres() as server, run_replica(o.replica):
            await o.act()
            assert await send(o.http, o.replica, payload(resolved)) == 200  # recorded; waits for the incident's lock
            await stop(server)
            o.plat.release.set()  # the action fails while PostgreSQL is down
            await asyncio.sleep(8)
            async with o.postgres():
                closed = await eventually(lambda: _closed(o.stored()), 30)
                shown = await eventually(lambda: _closed(copied(o.dsn, o.incident)), 15)
                await asyncio.sleep(4)  # the sender's last round
                query = "SELECT count(*) FROM tradeops_escalation_outbox WHERE state = 'pending'"
                (pending,) = await rows(o.dsn, query)
    assert closed, "the incident never closed in Redis"
    assert shown, "the read copy never showed it closed"
    mine = [p for p in o.plat.pages if p.get("incident") == o.incident]
    # No page left open: none, or the trigger followed by its resolve.
    assert [bool(p.get("resolved")) for p in mine] in ([], [False, True]), mine
    assert pending[0] == 0
    assert o.plat.calls == 1


async def _closed(pending: Any) -> bool:
    found = await pending
    return found is not None and found.get("state") == "closed"
