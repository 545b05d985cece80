"""The escalation outbox against a real tradeops-remediator process and a loopback pager stand-in that goes
down, hangs or redirects: pages are delivered at least once and never twice, a dead channel never delays an
action, redirects are not followed, records survive kill -9 (SQLite) and move to another replica (PostgreSQL),
and a storm is rate-bounded and coalesced with no incident lost."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from aiohttp import web

from common.web import free_port
from remediator.intake.payload import WebhookAlert
from tests.processes import process, served, wait_http
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration
ROUTING_KEY = "pd-routing-key-" + "7f3a9c"


@dataclass
class Pager:
    """A pager stand-in: `mode` is ok (200), down (503), hang (answer 200 only after `hang_seconds`, or never
    with hang_seconds=None) or redirect (307 to another server's URL)."""

    url: str = ""
    mode: str = "ok"
    hang_seconds: float | None = None
    attempts: list[Any] = field(default_factory=list)  # every body received, whatever the answer
    delivered: list[Any] = field(default_factory=list)  # bodies answered 200
    answered: int = 0  # responses returned by the escalation handler
    redirect_target: str = ""
    redirected: list[Any] = field(default_factory=list)  # what reached the redirect target
    actions: list[int] = field(default_factory=list)  # for each platform call: `answered` at that moment


@contextlib.asynccontextmanager
async def pager() -> AsyncIterator[Pager]:
    state = Pager()

    async def escalations(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        state.attempts.append(body)
        try:
            if state.mode == "down":
                return web.json_response({}, status=503)
            if state.mode == "redirect":
                return web.Response(status=307, headers={"Location": state.redirect_target})
            if state.mode == "hang":
                await asyncio.sleep(3600 if state.hang_seconds is None else state.hang_seconds)
            state.delivered.append(body)
            return web.json_response({})
        finally:
            state.answered += 1

    async def platform(request: web.Request) -> web.Response:
        state.actions.append(state.answered)
        return web.json_response({})

    async def elsewhere(request: web.Request) -> web.Response:
        state.redirected.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/escalations", escalations)
    app.router.add_post("/platform/{tail:.*}", platform)
    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", elsewhere)
    async with served(app, handler_cancellation=True) as url, served(other) as other_url:
        state.url = url
        state.redirect_target = f"{other_url}/stolen"
        yield state


def remediator_config(tmp_path: Path, pager_url: str, **escalation: Any) -> dict[str, Any]:
    """An escalate rule (one page per distinct alert) and a fixable rule calling the pager's platform path."""
    return {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "allowed_url_prefixes": [f"{pager_url}/platform/"],
        "limits": {"actions_per_hour": 100_000, "concurrency": 2},
        "escalation": {
            "webhooks": [{"url": f"{pager_url}/escalations", "shape": "generic"}],
            "check_interval_seconds": 0.5,
            "backoff_initial_seconds": 0.2,
            "backoff_max_seconds": 1.0,
            "send_timeout_seconds": 10,
            **escalation,
        },
        "rules": [
            {
                "name": "fix",
                "matchers": ['alertname="StrategyGenerationStalled"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{pager_url}/platform/generate"},
                "cooldown_minutes": 0,
                "retries": 0,
            },
            {
                "name": "judgement",
                "matchers": ['alertname="ApiLatencyHigh"'],
                "action": "escalate",
                "cooldown_minutes": 0,
                "rate": {"per_minute": 10_000, "burst": 10_000},
            },
        ],
    }


@dataclass
class Running:
    url: str
    child: asyncio.subprocess.Process
    log: Path


@contextlib.asynccontextmanager
async def remediator(tmp_path: Path, config: dict[str, Any], name: str = "remediator") -> AsyncIterator[Running]:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "remediator.main", "--config.file", str(path), "--web.listen-address", url[7:]]
    env = {k: v for k, v in os.environ.items() if k != "TRADEOPS_WEBHOOK_TOKEN"}
    log = tmp_path / f"{name}.{uuid.uuid4().hex[:6]}.log"
    async with process(argv, log, env) as child:
        await wait_http(f"{url}/-/ready")
        yield Running(url, child, log)


async def send(running: Running, *alerts: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.url}/webhook", json=payload(*alerts), headers={"Authorization": f"Bearer {TOKEN}"}) as r,
    ):
        assert r.status == 200, await r.text()


async def kill(running: Running) -> None:
    running.child.send_signal(signal.SIGKILL)
    await running.child.wait()


async def until(condition: Any, seconds: float, what: str) -> None:
    """Wait (bounded) until condition() holds."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


def key_of(raw: dict[str, Any], rule: str = "judgement") -> str:
    return f"{WebhookAlert.validate(raw).incident_key}#{rule}"


def triggers(bodies: list[Any], incident: str) -> list[Any]:
    """The trigger bodies (generic shape) of one incident."""
    return [b for b in bodies if isinstance(b, dict) and b.get("incident") == incident and not b.get("resolved")]


def paged(bodies: list[Any]) -> set[str]:
    """Every incident named in generic pages: one by one, or in a summary's full list."""
    found: set[str] = set()
    for body in bodies:
        if body.get("summary"):
            found.update(entry["incident"] for entry in body["incidents"])
        elif "incident" in body:
            found.add(body["incident"])
    return found


def outbox_rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "audit.sqlite3")) as db:
        return db.execute("SELECT incident, channel, kind, state, attempts, body, last_error FROM outbox").fetchall()


async def test_a_pager_down_for_20_seconds_gets_the_page_exactly_once_when_it_is_back(tmp_path: Path) -> None:
    async with pager() as pd:
        pd.mode = "down"
        async with remediator(tmp_path, remediator_config(tmp_path, pd.url)) as running:
            raw = alert(name="ApiLatencyHigh", instance="a")
            await send(running, raw)
            await until(lambda: len(pd.attempts) >= 2, 20, "the first attempts")
            await asyncio.sleep(20)  # the pager stays down for 20 s
            pd.mode = "ok"
            await until(lambda: triggers(pd.delivered, key_of(raw)), 20, "the page after the pager came back")
            await asyncio.sleep(3)  # retries that would duplicate it would come now
            assert [row[3] for row in outbox_rows(tmp_path)] == ["delivered"]
    assert len(triggers(pd.delivered, key_of(raw))) == 1
    assert len(pd.attempts) > 3  # retried past today's three tries


async def test_a_hanging_pager_never_delays_the_action_of_a_fixable_alert(tmp_path: Path) -> None:
    async with pager() as pd:
        pd.mode = "hang"
        pd.hang_seconds = 8  # each page is answered only after 8 s
        async with remediator(tmp_path, remediator_config(tmp_path, pd.url)) as running:
            for index in range(8):
                await send(running, alert(name="ApiLatencyHigh", instance=f"i{index}"))
            await until(lambda: pd.attempts, 10, "the pager is being called")
            await send(running, alert())
            await until(lambda: pd.actions, 30, "the fixable alert's action")
    assert pd.actions == [0]  # the action ran before the pager had answered a single page


async def test_a_307_from_the_pager_is_not_followed_and_the_routing_key_stays_home(tmp_path: Path) -> None:
    async with pager() as pd:
        pd.mode = "redirect"
        webhooks = [{"url": f"{pd.url}/escalations", "shape": "pagerduty", "routing_key": ROUTING_KEY}]
        async with remediator(tmp_path, remediator_config(tmp_path, pd.url, webhooks=webhooks)) as running:
            raw = alert(name="ApiLatencyHigh", instance="a")
            await send(running, raw)
            await until(lambda: len(pd.attempts) >= 3, 20, "retries after 307s")
            rows = outbox_rows(tmp_path)
        log = running.log.read_text()
    assert pd.redirected == []
    assert all(body["routing_key"] == ROUTING_KEY for body in pd.attempts)  # added at send time
    assert {body["dedup_key"] for body in pd.attempts} == {key_of(raw)}
    assert [(row[2], row[3]) for row in rows] == [("trigger", "pending")]
    assert ROUTING_KEY not in rows[0][5]
    assert "307" in rows[0][6]
    for secret in (ROUTING_KEY, pd.url, pd.redirect_target.rsplit("/", 1)[0]):
        assert secret not in log


async def test_pending_pages_survive_kill_9_and_are_delivered_after_the_restart(tmp_path: Path) -> None:
    raws = [alert(name="ApiLatencyHigh", instance=f"r{index}") for index in range(5)]
    async with pager() as pd:
        pd.mode = "down"
        config = remediator_config(tmp_path, pd.url)
        async with remediator(tmp_path, config) as running:
            await send(running, *raws)
            await until(lambda: len(paged(pd.attempts)) == 5, 20, "attempts for every incident")
            await kill(running)
        assert {row[3] for row in outbox_rows(tmp_path)} == {"pending"}
        pd.mode = "ok"
        async with remediator(tmp_path, config):
            await until(lambda: len(paged(pd.delivered)) == 5, 30, "every page after the restart")
    assert paged(pd.delivered) == {key_of(raw) for raw in raws}


async def test_a_replica_killed_holding_pending_pages_has_them_delivered_by_another(
    tmp_path: Path, redis_url: str, postgres_dsn: str
) -> None:
    prefix = "{tradeops-outbox-" + uuid.uuid4().hex[:12] + "}"
    raws = [alert(name="ApiLatencyHigh", instance=f"p{index}") for index in range(4)]
    async with pager() as pd:
        pd.mode = "hang"  # the first replica's sends are in flight, their leases held, when it dies
        config = remediator_config(tmp_path, pd.url, lease_seconds=4, send_timeout_seconds=3)
        config |= {
            "state": "redis",
            "state_redis": {"url": redis_url, "key_prefix": prefix, "lock_margin_seconds": 1},
            "audit": "postgres",
            "audit_postgres": {"dsn": postgres_dsn},
        }
        async with remediator(tmp_path, {**config, "replica": "outbox-0"}, "outbox-0") as first:
            await send(first, *raws)
            await until(lambda: pd.attempts, 20, "the first replica's sends")
            await kill(first)
        pd.mode = "ok"
        async with remediator(tmp_path, {**config, "replica": "outbox-1"}, "outbox-1"):
            await until(lambda: len(paged(pd.delivered)) == 4, 30, "every page, from the other replica")
        connection = await asyncpg.connect(postgres_dsn)
        try:
            rows = await connection.fetch("SELECT state, lease_owner FROM tradeops_escalation_outbox")
        finally:
            await connection.close()
    assert paged(pd.delivered) == {key_of(raw) for raw in raws}
    assert {(row["state"], row["lease_owner"]) for row in rows} == {("delivered", "outbox-1")}


async def test_a_storm_of_2000_escalations_is_rate_bounded_and_coalesced_and_loses_no_incident(
    tmp_path: Path,
) -> None:
    raws = [alert(name="ApiLatencyHigh", instance=f"s{index}") for index in range(2000)]
    async with pager() as pd:
        config = remediator_config(tmp_path, pd.url, max_pages_per_minute=6)
        async with remediator(tmp_path, config) as running:
            began = time.monotonic()
            for start in range(0, len(raws), 100):
                await send(running, *raws[start : start + 100])
            await until(lambda: len(paged(pd.delivered)) == 2000, 75, "every incident in some page")
            minutes = math.ceil((time.monotonic() - began) / 60)
    assert paged(pd.delivered) == {key_of(raw) for raw in raws}
    assert len(pd.attempts) <= 6 * minutes  # the channel's rate: 6 pages a minute
    assert any(body.get("summary") for body in pd.delivered)
