"""Adversarial tests of the remediator's guarantees against real tradeops-remediator processes: a loopback
platform and pager stand-in that can go down or hang, real Redis (a db and key prefix of their own) and a real
PostgreSQL for replicas, SIGKILL restarts, and hostile labels. Each test tries to break one promise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from common.web import free_port
from remediator.intake.payload import WebhookAlert
from tests.processes import process, served, wait_http
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Stand:
    """The platform endpoint a rule calls and the pager it escalates to, both controllable."""

    url: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)  # one per platform call
    action_gate: asyncio.Event | None = None  # when set by the test, a running action finishes
    action_started: asyncio.Event = field(default_factory=asyncio.Event)
    action_status: int = 200
    pager_mode: str = "ok"  # ok | down (503) | hang (answers after hang_seconds)
    hang_seconds: float = 0.0
    pages: list[dict[str, Any]] = field(default_factory=list)  # bodies the pager answered 200


@contextlib.asynccontextmanager
async def stand() -> AsyncIterator[Stand]:
    state = Stand()

    async def act(request: web.Request) -> web.Response:
        state.actions.append({"path": request.path})
        state.action_started.set()
        if state.action_gate is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.action_gate.wait(), 20)
        return web.json_response({}, status=state.action_status)

    async def escalations(request: web.Request) -> web.Response:
        body = await request.json()
        if state.pager_mode == "down":
            return web.json_response({}, status=503)
        if state.pager_mode == "hang":
            await asyncio.sleep(state.hang_seconds)
        state.pages.append(body)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/platform/{tail:.*}", act)
    app.router.add_post("/escalations", escalations)
    async with served(app, handler_cancellation=True) as url:
        state.url = url
        try:
            yield state
        finally:
            if state.action_gate is not None:
                state.action_gate.set()


def base_config(tmp_path: Path, url: str, *, escalation: dict[str, Any] | None = None, **fix: Any) -> dict[str, Any]:
    """A fixable rule (`fix`, overridable), an ignore rule, and a generic pager; everything else escalates."""
    return {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "allowed_url_prefixes": [f"{url}/platform/"],
        "limits": {"actions_per_hour": 100_000, "concurrency": 2},
        "escalation": {
            "webhooks": [{"url": f"{url}/escalations", "shape": "generic"}],
            "check_interval_seconds": 0.05,
            "backoff_initial_seconds": 0.1,
            "backoff_max_seconds": 0.5,
            "send_timeout_seconds": 5,
            **(escalation or {}),
        },
        "rules": [
            {
                "name": "fix",
                "matchers": ['alertname="StrategyGenerationStalled"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{url}/platform/act"},
                "max_attempts": 2,
                "retry_after_minutes": 60,
                "cooldown_minutes": 0,
                "rate": {"per_minute": 10_000, "burst": 1_000},
                "retries": 0,
                "timeout_seconds": 15,
                **fix,
            },
            {"name": "noise", "matchers": ['alertname="Noise"'], "action": "ignore"},
        ],
    }


@dataclass
class Running:
    url: str
    child: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def remediator(tmp_path: Path, config: dict[str, Any], name: str = "remediator") -> AsyncIterator[Running]:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "remediator.main", "--config.file", str(path), "--web.listen-address", url[7:]]
    env = {k: v for k, v in os.environ.items() if k != "TRADEOPS_WEBHOOK_TOKEN"}
    async with process(argv, tmp_path / f"{name}.{uuid.uuid4().hex[:6]}.log", env) as child:
        await wait_http(f"{url}/-/ready")
        yield Running(url, child)


async def send(running: Running, *alerts: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{running.url}/webhook", json=payload(*alerts), headers=HEADERS) as response,
    ):
        assert response.status == 200, await response.text()


async def audit(running: Running) -> list[dict[str, Any]]:
    """The audit trail, oldest first."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{running.url}/api/v1/remediations?limit=10000", headers=HEADERS) as response,
    ):
        assert response.status == 200
        return list(reversed((await response.json())["remediations"]))


def decided(entries: list[dict[str, Any]], incident: str) -> list[str]:
    return [e["decision"] for e in entries if e["event"] == "decision" and e["incident"] == incident]


async def until(condition: Any, seconds: float, what: str) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


async def audit_until(running: Running, condition: Any, seconds: float, what: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(int(seconds / 0.1)):
        entries = await audit(running)
        if condition(entries):
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what}; audit: {[(e['event'], e['decision']) for e in entries]}")


def key_of(raw: dict[str, Any], rule: str = "") -> str:
    return f"{WebhookAlert.validate(raw).incident_key}#{rule}"


def triggers(pages: list[dict[str, Any]], incident: str) -> list[dict[str, Any]]:
    return [p for p in pages if p.get("incident") == incident and not p.get("resolved")]


def resolves(pages: list[dict[str, Any]], incident: str) -> list[dict[str, Any]]:
    return [p for p in pages if p.get("incident") == incident and p.get("resolved")]


async def kill(running: Running) -> None:
    running.child.send_signal(signal.SIGKILL)
    await running.child.wait()


# 1. Nothing is dropped -------------------------------------------------------------------------------------------


async def test_an_unmatched_alert_resent_many_times_pages_exactly_once_and_an_ignore_rule_pages_never(
    tmp_path: Path,
) -> None:
    async with stand() as st, remediator(tmp_path, base_config(tmp_path, st.url)) as rem:
        nobody = alert(name="NobodyOwnsThis")
        noise = alert(name="Noise")
        for _ in range(5):
            await send(rem, nobody, noise)
        await asyncio.gather(*(send(rem, nobody) for _ in range(5)))  # concurrent resends as well
        key = WebhookAlert.validate(nobody).incident_key
        entries = await audit_until(rem, lambda e: len(decided(e, key)) >= 10, 15, "ten decisions for the alert")
        await until(lambda: triggers(st.pages, key_of(nobody)), 10, "the unmatched alert's page")
        await asyncio.sleep(1.0)  # room for a duplicate page to show up
        assert len(triggers(st.pages, key_of(nobody))) == 1, st.pages
        assert set(decided(entries, WebhookAlert.validate(nobody).incident_key)) == {"no_rule"}
        assert set(decided(entries, WebhookAlert.validate(noise).incident_key)) == {"ignored"}
        assert [p for p in st.pages if "Noise" in str(p.get("labels"))] == []
        assert st.actions == []


# 2. Resolution is final -------------------------------------------------------------------------------------------


async def test_a_late_firing_copy_after_a_resolve_never_acts_nor_pages_even_after_a_sigkill_restart(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url)
        fixable = alert()
        unmatched = alert(name="NobodyOwnsThis")
        resolved = [{**a, "status": "resolved"} for a in (fixable, unmatched)]
        async with remediator(tmp_path, config) as rem:
            await send(rem, *resolved)  # the resolve overtakes the firing copy (never seen firing)
            await send(rem, fixable, unmatched)
            key = WebhookAlert.validate(fixable).incident_key
            await audit_until(rem, lambda e: len(decided(e, key)) >= 2, 15, "both decisions")
            await kill(rem)
        async with remediator(tmp_path, config) as rem:
            await send(rem, fixable, unmatched)
            entries = await audit_until(rem, lambda e: len(decided(e, key)) >= 3, 15, "the third decision")
            await asyncio.sleep(1.0)
        assert decided(entries, key) == ["resolved", "already_resolved", "already_resolved"]
        assert decided(entries, WebhookAlert.validate(unmatched).incident_key) == [
            "resolved",
            "already_resolved",
            "already_resolved",
        ]
        assert st.actions == []
        assert st.pages == []


# 3. A resolve while the action runs -------------------------------------------------------------------------------


async def test_a_resolve_during_the_action_lets_it_finish_then_cancels_the_retry_and_the_still_firing_page(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        st.action_gate = asyncio.Event()
        config = base_config(tmp_path, st.url, retry_after_minutes=0.02, escalate_after_minutes=0.02)
        async with remediator(tmp_path, config) as rem:
            firing = alert()
            key = WebhookAlert.validate(firing).incident_key
            await send(rem, firing)
            await asyncio.wait_for(st.action_started.wait(), 10)
            await send(rem, {**firing, "status": "resolved"})  # while the action is running (well inside 1.2 s)
            await asyncio.sleep(0.2)
            st.action_gate.set()
            entries = await audit_until(rem, lambda e: "resolved" in decided(e, key), 15, "the resolve's decision")
            await asyncio.sleep(3.0)  # past the retry (1.2 s) and the still-firing escalation (1.2 s)
            entries = await audit(rem)
        assert len(st.actions) == 1
        assert decided(entries, key) == ["executed", "resolved"]
        assert st.pages == []


async def test_a_resolve_during_a_failing_action_resolves_the_page_it_caused(tmp_path: Path) -> None:
    async with stand() as st:
        st.action_gate = asyncio.Event()
        st.action_status = 500
        config = base_config(tmp_path, st.url, retry_after_minutes=0.02)
        async with remediator(tmp_path, config) as rem:
            firing = alert()
            await send(rem, firing)
            await asyncio.wait_for(st.action_started.wait(), 10)
            await send(rem, {**firing, "status": "resolved"})
            await asyncio.sleep(0.2)
            st.action_gate.set()
            incident = key_of(firing, "fix")
            await until(lambda: resolves(st.pages, incident), 15, "the page's resolve")
            await asyncio.sleep(2.0)
        assert len(st.actions) == 1
        assert len(triggers(st.pages, incident)) == 1
        assert len(resolves(st.pages, incident)) == 1
        assert st.pages.index(triggers(st.pages, incident)[0]) < st.pages.index(resolves(st.pages, incident)[0])


# 4. Own timers ----------------------------------------------------------------------------------------------------


async def test_a_still_open_incident_is_retried_exactly_once_more_on_the_remediators_own_timer(tmp_path: Path) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url, retry_after_minutes=0.02, escalate_after_minutes=60)
        async with remediator(tmp_path, config) as rem:
            firing = alert()
            key = WebhookAlert.validate(firing).incident_key
            await send(rem, firing)  # one webhook call, never resent
            await until(lambda: len(st.actions) >= 2, 15, "the retry on the remediator's own timer")
            await asyncio.sleep(3.0)  # two more retry periods: no third attempt
            entries = await audit(rem)
        assert len(st.actions) == 2
        assert decided(entries, key) == ["executed", "executed"]


async def test_a_resolve_before_the_retry_timer_cancels_it(tmp_path: Path) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url, retry_after_minutes=0.05, escalate_after_minutes=0.05)
        async with remediator(tmp_path, config) as rem:
            firing = alert()
            key = WebhookAlert.validate(firing).incident_key
            await send(rem, firing)
            await until(lambda: len(st.actions) >= 1, 15, "the first action")
            await send(rem, {**firing, "status": "resolved"})
            await audit_until(rem, lambda e: "resolved" in decided(e, key), 10, "the resolve")
            await asyncio.sleep(4.5)  # the retry (3 s) and the still-firing escalation (3 s) would be due by now
            entries = await audit(rem)
        assert len(st.actions) == 1
        assert decided(entries, key) == ["executed", "resolved"]
        assert st.pages == []


async def test_retry_and_still_firing_timers_survive_a_sigkill(tmp_path: Path) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url, retry_after_minutes=0.05, escalate_after_minutes=0.08)
        firing = alert()
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing)
            await until(lambda: len(st.actions) >= 1, 15, "the first action")
            await kill(rem)
        async with remediator(tmp_path, config) as rem:
            await until(lambda: len(st.actions) >= 2, 15, "the retry after the restart")
            incident = key_of(firing, "fix")
            await until(lambda: triggers(st.pages, incident), 15, "the still-firing page after the restart")
            await asyncio.sleep(1.0)
        assert len(st.actions) == 2
        assert len(triggers(st.pages, incident)) == 1
        assert triggers(st.pages, incident)[0]["reason"] == "still_firing"


# 6. Pages: at least once, never twice ------------------------------------------------------------------------------


async def test_a_page_pending_through_a_pager_outage_and_a_sigkill_reaches_the_pager_once_and_resends_add_none(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        st.pager_mode = "down"
        config = base_config(tmp_path, st.url)
        nobody = alert(name="NobodyOwnsThis")
        incident = key_of(nobody)
        async with remediator(tmp_path, config) as rem:
            await send(rem, nobody)
            await audit_until(rem, lambda e: any(x["event"] == "escalated" for x in e), 10, "the escalation")
            await asyncio.sleep(0.5)  # a few failed deliveries
            await kill(rem)
        async with remediator(tmp_path, config) as rem:
            await send(rem, nobody)  # Alertmanager resends while the pager is still down
            await asyncio.sleep(0.5)
            st.pager_mode = "ok"
            await until(lambda: triggers(st.pages, incident), 15, "the page once the pager is back")
            await kill(rem)
        async with remediator(tmp_path, config) as rem:
            await send(rem, nobody)
            await asyncio.sleep(1.5)
        assert len(triggers(st.pages, incident)) == 1, st.pages


async def test_a_resolve_enqueued_while_its_trigger_hangs_in_flight_reaches_the_pager_after_the_trigger(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        st.pager_mode = "hang"
        st.hang_seconds = 1.5
        config = base_config(tmp_path, st.url)
        nobody = alert(name="NobodyOwnsThis")
        incident = key_of(nobody)
        async with remediator(tmp_path, config) as rem:
            await send(rem, nobody)
            await asyncio.sleep(0.5)  # the trigger is in flight
            await send(rem, {**nobody, "status": "resolved"})
            await until(lambda: resolves(st.pages, incident), 15, "the resolve")
            await asyncio.sleep(1.0)
        kinds = [bool(p.get("resolved")) for p in st.pages if p.get("incident") == incident]
        assert kinds[-1] is True, kinds
        assert kinds == [False, True], kinds


# 2 and 5 across replicas sharing Redis (a db and key prefix of their own) and PostgreSQL --------------------

REDIS = "redis://127.0.0.1:6379/11"


def redis_config(tmp_path: Path, url: str, prefix: str, dsn: str, name: str, **fix: Any) -> dict[str, Any]:
    config = base_config(tmp_path, url, **fix)
    config.pop("audit_path")
    config.update(
        {
            "replica": name,
            "state": "redis",
            "state_redis": {"url": REDIS, "key_prefix": prefix, "lock_margin_seconds": 1, "timeout_seconds": 1},
            "audit": "postgres",
            "audit_postgres": {"dsn": dsn, "timeout_seconds": 2},
        }
    )
    return config


async def test_two_redis_replicas_resolve_at_one_late_copy_at_the_other_and_the_same_firing_at_both_at_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{adv-" + uuid.uuid4().hex[:10] + "}"
    async with stand() as st:
        a_cfg = redis_config(tmp_path, st.url, prefix, postgres_dsn, "adv-a")
        b_cfg = redis_config(tmp_path, st.url, prefix, postgres_dsn, "adv-b")
        async with remediator(tmp_path, a_cfg, "adv-a") as a, remediator(tmp_path, b_cfg, "adv-b") as b:
            # G5: the same firing at both at once, five copies each
            once = alert(slot="once")
            await asyncio.gather(*(send(r, once) for r in (a, b) for _ in range(5)))
            key_once = WebhookAlert.validate(once).incident_key
            await audit_until(a, lambda e: len(decided(e, key_once)) >= 10, 20, "ten decisions")
            assert len(st.actions) == 1
            # G2: resolve at A, then the late firing copy at B
            late = alert(slot="late")
            await send(a, {**late, "status": "resolved"})
            key_late = WebhookAlert.validate(late).incident_key
            await audit_until(a, lambda e: "resolved" in decided(e, key_late), 10, "resolve")
            await send(b, late)
            await audit_until(a, lambda e: len(decided(e, key_late)) >= 2, 10, "late copy decision")
            await asyncio.sleep(1.0)
            entries = await audit(a)
        assert len(st.actions) == 1
        assert decided(entries, key_late) == ["resolved", "already_resolved"]


# 7. Hostile labels ------------------------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "x" * 4096,
    "日本語 — ünïcödé 🚨",
    "nul\x00inside",
    "a#b#c",
    "user@host@2026-11-22T03:00:00+00:00#fix",
    "#",
    "@",
    "\u202eevil\u202c",
    "line\nbreak\ttab",
]


async def test_hostile_label_values_and_odd_case_fingerprints_never_make_an_alert_vanish_or_kill_a_worker(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url, escalation={"max_pages_per_minute": 10_000})
        unmatched = [alert(name="NobodyOwnsThis", value=value, index=str(i)) for i, value in enumerate(HOSTILE_VALUES)]
        unmatched.append({**alert(name="NobodyOwnsThis", index="upper"), "fingerprint": "ABCDEF0123456789"})
        unmatched.append({**alert(name="NobodyOwnsThis", index="mixed"), "fingerprint": "aBcDeF0123456788"})
        unmatched.append(alert(name="Nobody#Owns@This", index="name"))
        unmatched.append(alert(name="", index="empty-name"))
        fixable = [alert(value=value, index=str(i)) for i, value in enumerate(HOSTILE_VALUES)]
        async with remediator(tmp_path, config) as rem:
            await send(rem, *unmatched, *fixable)
            after = alert(name="AfterTheStorm")
            await send(rem, after)
            await until(lambda: len(st.pages) >= len(unmatched) + 1, 20, "a page for every unmatched alert")
            await until(lambda: len(st.actions) >= len(fixable), 20, "an action for every fixable alert")
            entries = await audit(rem)
            await asyncio.sleep(0.5)
        for raw in [*unmatched, after]:
            assert len(triggers(st.pages, key_of(raw))) == 1, raw["labels"]
            assert decided(entries, WebhookAlert.validate(raw).incident_key) == ["no_rule"], raw["labels"]
        for raw in fixable:
            assert decided(entries, WebhookAlert.validate(raw).incident_key) == ["executed"], raw["labels"]
        assert len(st.actions) == len(fixable)
        paged = {p["incident"]: p for p in st.pages}
        assert paged[key_of(unmatched[2])]["labels"]["value"] == "nul\x00inside"
        assert paged[key_of(unmatched[0])]["labels"]["value"] == "x" * 4096
