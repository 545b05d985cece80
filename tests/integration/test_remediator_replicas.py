"""Remediator replicas sharing Redis state and a PostgreSQL audit store, as real processes: the same incident
delivered to every replica at once runs once; limits hold across replicas; a replica killed mid-action is
neither lost nor doubled; Redis or PostgreSQL going away fails closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio
import yaml
from aiohttp import web

from common.web import free_port, free_ports
from remediator.intake.payload import WebhookAlert
from tests.processes import private_postgres, private_postgres_cluster, private_redis, process, served, wait_http
from tests.remediator_helpers import TOKEN, alert, payload, recording

pytestmark = pytest.mark.integration
SLOTS = [f"s{index}" for index in range(200)] + ["hang"]


@dataclass
class Platform:
    """A stand-in platform endpoint: counts each slot's calls and the most that ran at once."""

    url: str = ""
    calls: Counter[str] = field(default_factory=Counter)
    running: Counter[str] = field(default_factory=Counter)
    most_at_once: Counter[str] = field(default_factory=Counter)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def platform() -> AsyncIterator[Platform]:
    state = Platform()

    async def act(request: web.Request) -> web.Response:
        slot = request.match_info["slot"]
        state.calls[slot] += 1
        state.running[slot] += 1
        state.most_at_once[slot] = max(state.most_at_once[slot], state.running[slot])
        try:
            await asyncio.sleep(0.02)  # long enough for a competing replica to overlap, if it could
            if slot == "hang":
                state.entered.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.release.wait(), 30)
        finally:
            state.running[slot] -= 1
        return web.json_response({})

    async with serve_platform(act, state.escalations, state.release) as url:
        state.url = url
        yield state


@contextlib.asynccontextmanager
async def serve_platform(
    act: Callable[[web.Request], Awaitable[web.Response]], escalations: list[dict[str, Any]], release: asyncio.Event
) -> AsyncIterator[str]:
    """Serve a stand-in platform for replica_config on a free loopback port, POST /platform/act/{slot} answered by
    act and POST /escalations recorded in escalations; yield its URL. On the way out release is set, so that no
    call act holds outlives the test."""
    app = web.Application()
    app.router.add_post("/platform/act/{slot}", act)
    app.router.add_post("/escalations", recording(escalations))
    async with served(app) as url:
        try:
            yield url
        finally:
            release.set()


def replica_config(base: str, redis_url: str, prefix: str, dsn: str, **rule: Any) -> dict[str, Any]:
    return {
        "webhook_token": TOKEN,
        "state": "redis",
        "state_redis": {"url": redis_url, "key_prefix": prefix, "lock_margin_seconds": 1, "timeout_seconds": 1},
        "audit": "postgres",
        "audit_postgres": {"dsn": dsn, "timeout_seconds": 2},
        "allowed_url_prefixes": [f"{base}/platform/"],
        "limits": {"actions_per_hour": 100_000, "concurrency": 4},
        "escalation": {"webhooks": [{"url": f"{base}/escalations"}], "check_interval_seconds": 0.5},
        "rules": [
            {
                "name": "act",
                "matchers": ['alertname="Race"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base}/platform/act/{{slot}}", "timeout_seconds": 3},
                "label_params": {"slot": {"label": "slot", "allowed": SLOTS}},
                "target": "slot:{slot}",
                "max_attempts": 1,
                "retry_after_minutes": 60,
                "cooldown_minutes": 0,
                "rate": {"per_minute": 10_000, "burst": 1_000},
                "retries": 0,
                "timeout_seconds": 4,
                **rule,
            }
        ],
    }


@dataclass
class Replica:
    name: str
    url: str
    config: Path
    log_dir: Path
    child: asyncio.subprocess.Process | None = None
    starts: int = 0


@contextlib.asynccontextmanager
async def run_replica(replica: Replica) -> AsyncIterator[Replica]:
    argv = [sys.executable, "-m", "remediator.main", "--config.file", str(replica.config)]
    argv += ["--web.listen-address", replica.url.removeprefix("http://")]
    replica.starts += 1
    env = {k: v for k, v in os.environ.items() if k != "TRADEOPS_WEBHOOK_TOKEN"}
    async with process(argv, replica.log_dir / f"{replica.name}.{replica.starts}.log", env) as child:
        replica.child = child
        await wait_http(f"{replica.url}/-/ready")
        yield replica


def make_replicas(tmp_path: Path, count: int, config: dict[str, Any], family: str = "replica") -> list[Replica]:
    """Replicas named FAMILY-N: a replica resumes its own unfinished inbox entries, so each family has its own."""
    replicas = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    for index, port in enumerate(free_ports(count)):
        name = f"{family}-{index}"
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({**config, "replica": name}))
        replicas.append(Replica(name, f"http://127.0.0.1:{port}", path, tmp_path))
    return replicas


@contextlib.asynccontextmanager
async def running(replicas: list[Replica]) -> AsyncIterator[list[Replica]]:
    async with contextlib.AsyncExitStack() as stack:
        for replica in replicas:
            await stack.enter_async_context(run_replica(replica))
        yield replicas


async def send(http: aiohttp.ClientSession, replica: Replica, body: dict[str, Any]) -> int:
    async with http.post(f"{replica.url}/webhook", json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status


def key_of(raw: dict[str, Any]) -> str:
    return WebhookAlert.validate(raw).incident_key


async def decisions(dsn: str, incident: str) -> list[tuple[str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT replica, decision FROM tradeops_audit WHERE event = 'decision' AND incident = $1 ORDER BY id",
            incident,
        )
    finally:
        await connection.close()
    return [(row["replica"], row["decision"]) for row in rows]


async def wait_decisions(dsn: str, incident: str, count: int, seconds: float = 30) -> list[tuple[str, str]]:
    """Wait (bounded) until `count` decisions for the incident are in the shared audit trail."""
    found: list[tuple[str, str]] = []
    for _ in range(int(seconds / 0.05)):
        found = await decisions(dsn, incident)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{incident}: only {found} after {seconds}s")


async def wait_lock_free(redis_url: str, lock_key: str) -> None:
    """Wait (bounded) until the incident's lock is released, its holder's last save done."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        for _ in range(400):
            if not await client.exists(lock_key):
                return
            await asyncio.sleep(0.025)
    finally:
        await client.aclose()
    raise AssertionError(f"{lock_key} still held")


async def retry_falls_due(redis_url: str, incident_key: str) -> None:
    """Move the shared incident's last attempt into the past, as if the retry window had passed."""
    client = redis.asyncio.Redis.from_url(redis_url)
    raw = await client.get(incident_key)
    assert raw is not None, incident_key
    stored = json.loads(raw)
    stored["last_attempt_at"] = "2000-01-01T00:00:00+00:00"
    await client.set(incident_key, json.dumps(stored))
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return "{tradeops-replicas-" + uuid.uuid4().hex[:12] + "}"


@pytest.mark.parametrize("count", [2, 3])
async def test_the_same_incident_sent_to_every_replica_at_once_runs_its_action_exactly_once(
    count: int, tmp_path: Path, redis_url: str, postgres_dsn: str, prefix: str
) -> None:
    async with platform() as plat:
        config = replica_config(plat.url, redis_url, prefix, postgres_dsn)
        async with running(make_replicas(tmp_path, count, config)) as replicas, aiohttp.ClientSession() as http:
            for repeat in range(100):
                raw = alert(name="Race", slot=f"s{repeat}")
                statuses = await asyncio.gather(*(send(http, r, payload(raw)) for r in replicas))
                assert statuses == [200] * count
                found = await wait_decisions(postgres_dsn, key_of(raw), count)
                assert sorted(d for _, d in found) == ["deduplicated"] * (count - 1) + ["executed"], found
                assert plat.calls[f"s{repeat}"] == 1, f"repeat {repeat}: {plat.calls[f's{repeat}']} calls"
    assert sum(plat.calls.values()) == 100
    assert set(plat.most_at_once.values()) == {1}


async def test_budget_cooldown_and_rate_hold_across_replicas(
    tmp_path: Path, redis_url: str, postgres_dsn: str, prefix: str
) -> None:
    async with platform() as plat, aiohttp.ClientSession() as http:
        # The hourly budget: 5 actions among 12 incidents spread over two replicas.
        config = replica_config(plat.url, redis_url, prefix, postgres_dsn)
        config["limits"]["actions_per_hour"] = 5
        async with running(make_replicas(tmp_path / "budget", 2, config, "budget")) as replicas:
            raws = [alert(name="Race", slot=f"s{i}") for i in range(12)]
            await asyncio.gather(*(send(http, replicas[i % 2], payload(raw)) for i, raw in enumerate(raws)))
            outcomes = [d for raw in raws for _, d in await wait_decisions(postgres_dsn, key_of(raw), 1)]
        assert Counter(outcomes) == {"executed": 5, "rate_limited": 7}
        assert sum(plat.calls.values()) == 5
        # One target's cooldown: two incidents on the same target, one per replica, at once.
        config = replica_config(plat.url, redis_url, prefix + "c", postgres_dsn, target="shared", cooldown_minutes=60)
        async with running(make_replicas(tmp_path / "cooldown", 2, config, "cooldown")) as replicas:
            raws = [alert(name="Race", slot="s100"), alert(name="Race", slot="s101")]
            await asyncio.gather(*(send(http, replicas[i], payload(raw)) for i, raw in enumerate(raws)))
            outcomes = [d for raw in raws for _, d in await wait_decisions(postgres_dsn, key_of(raw), 1)]
        assert sorted(outcomes) == ["cooldown", "executed"]
        # A rule's token bucket: burst 3, almost no refill, 8 incidents over two replicas.
        rate = {"per_minute": 0.001, "burst": 3}
        config = replica_config(plat.url, redis_url, prefix + "r", postgres_dsn, rate=rate)
        async with running(make_replicas(tmp_path / "rate", 2, config, "rate")) as replicas:
            raws = [alert(name="Race", slot=f"s{110 + i}") for i in range(8)]
            await asyncio.gather(*(send(http, replicas[i % 2], payload(raw)) for i, raw in enumerate(raws)))
            outcomes = [d for raw in raws for _, d in await wait_decisions(postgres_dsn, key_of(raw), 1)]
        assert Counter(outcomes) == {"executed": 3, "rate_limited": 5}


async def test_a_replica_killed_mid_action_is_neither_lost_nor_doubled_and_retries_stay_within_attempts(
    tmp_path: Path, redis_url: str, postgres_dsn: str, prefix: str
) -> None:
    async with platform() as plat, aiohttp.ClientSession() as http:
        config = replica_config(plat.url, redis_url, prefix, postgres_dsn, max_attempts=2)
        first, second = make_replicas(tmp_path, 2, config)
        raw = alert(name="Race", slot="hang")
        key = key_of(raw)
        async with run_replica(second):
            async with run_replica(first):
                assert await send(http, first, payload(raw)) == 200
                await asyncio.wait_for(plat.entered.wait(), 30)
                assert first.child is not None
                first.child.send_signal(signal.SIGKILL)  # mid-action, holding the incident's lock
                await first.child.wait()
            plat.release.set()
            # The other replica gets the incident once the dead replica's lock expires: the attempt was
            # claimed before the action ran, so it is not run again before the rule's retry is due.
            assert await send(http, second, payload(raw)) == 200
            await wait_decisions(postgres_dsn, key, 2)
            # The killed replica restarts and resumes the alert it had acknowledged: nothing lost, no double.
            async with run_replica(first):
                found = await wait_decisions(postgres_dsn, key, 3)
            assert plat.calls["hang"] == 1
            assert found == [
                ("replica-0", "executed"),
                ("replica-1", "deduplicated"),
                ("replica-0", "deduplicated"),
            ]
            # Time passes (the retry falls due): the second and last attempt, then no more.
            for expected in (4, 5):
                await retry_falls_due(redis_url, f"{prefix}:incident:{key}#act")
                assert await send(http, second, payload(raw)) == 200
                found = await wait_decisions(postgres_dsn, key, expected)
                await wait_lock_free(redis_url, f"{prefix}:lock:{key}#act")  # the incident is saved as it is let go
    assert [d for _, d in found[3:]] == ["executed", "max_attempts"]
    assert plat.calls["hang"] == 2
    assert plat.most_at_once["hang"] == 1


async def test_redis_stopped_fails_closed_and_escalates_then_acts_again_once_it_is_back(
    tmp_path: Path, postgres_dsn: str, prefix: str
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    async with platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, replica_config(plat.url, url, prefix, postgres_dsn))
        async with private_redis(tmp_path, port) as server, run_replica(replica):
            before = alert(name="Race", slot="s1")
            assert await send(http, replica, payload(before)) == 200
            assert await wait_decisions(postgres_dsn, key_of(before), 1) == [("replica-0", "executed")]
            server.terminate()
            await server.wait()
            during = alert(name="Race", slot="s2")
            assert await send(http, replica, payload(during)) == 503  # recorded; Alertmanager will resend
            assert await wait_decisions(postgres_dsn, key_of(during), 1) == [("replica-0", "state_unavailable")]
            for _ in range(200):
                if plat.escalations:
                    break
                await asyncio.sleep(0.05)
            assert plat.escalations[0]["reason"] == "state_unavailable"
            assert plat.calls["s2"] == 0
            async with private_redis(tmp_path, port):
                for _ in range(100):  # what Alertmanager does after a 503
                    if await send(http, replica, payload(during)) == 200:
                        break
                    await asyncio.sleep(0.1)
                found = await wait_decisions(postgres_dsn, key_of(during), 2)
                for _ in range(100):
                    found = await decisions(postgres_dsn, key_of(during))
                    if found[-1][1] == "executed":
                        break
                    await asyncio.sleep(0.1)
    assert found[-1] == ("replica-0", "executed")
    assert plat.calls["s2"] == 1


async def test_postgres_stopped_answers_503_and_acknowledges_only_what_it_recorded(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    port = free_port()
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    acknowledged: list[dict[str, Any]] = []
    async with private_postgres_cluster() as data, platform() as plat, aiohttp.ClientSession() as http:
        (replica,) = make_replicas(tmp_path, 1, replica_config(plat.url, redis_url, prefix, dsn))
        async with private_postgres(data, port) as server, run_replica(replica):
            first = alert(name="Race", slot="s1")
            assert await send(http, replica, payload(first)) == 200
            acknowledged.append(first)
            await wait_decisions(dsn, key_of(first), 1)
            server.send_signal(signal.SIGINT)  # fast shutdown: PostgreSQL is gone
            await server.wait()
            during = alert(name="Race", slot="s2")
            assert await send(http, replica, payload(during)) == 503
            assert plat.calls["s2"] == 0  # not recorded, so not acknowledged, so not acted on
            async with private_postgres(data, port):
                for _ in range(100):  # Alertmanager's retry
                    status = await send(http, replica, payload(during))
                    if status == 200:
                        acknowledged.append(during)
                        break
                    await asyncio.sleep(0.1)
                assert await wait_decisions(dsn, key_of(during), 1) == [("replica-0", "executed")]
                connection = await asyncpg.connect(dsn)
                received = {r["incident"] for r in await connection.fetch("SELECT incident FROM tradeops_audit")}
                await connection.close()
    assert {key_of(a) for a in acknowledged} <= received
    assert plat.calls["s2"] == 1
