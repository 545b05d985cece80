"""The runtime's promises, each tried with the fault that would break it, on a served remediator with its real
SQLite store and durable outbox delivering to a loopback pager."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.processes import served
from tests.remediator_helpers import alert, config, decisions, payload, post, recorder, remediator_client, settle

Calls = list[tuple[str, Any]]


def actions(calls: Calls, path: str = "/platform/generate") -> int:
    return sum(1 for called, _ in calls if called == path)


def pages(calls: Calls) -> list[dict[str, Any]]:
    return [body for called, body in calls if called == "/escalations" and not body.get("summary")]


async def test_a_late_firing_copy_of_a_resolved_incident_never_acts(tmp_path: Path) -> None:
    firing = alert()
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        # Out of order: the resolve arrives first (Alertmanager HA, a lagging replica), then the firing copy.
        assert (await post(client, payload({**firing, "status": "resolved"})))[0] == 200
        await settle(remediator)
        assert (await post(client, payload(firing)))[0] == 200
        await settle(remediator)
        entries = await remediator.engine.store.recent(50)
    assert actions(calls) == 0
    assert decisions(entries) == ["resolved", "already_resolved"]


async def test_a_resolve_after_the_action_closes_the_incident_for_good(tmp_path: Path) -> None:
    firing = alert()
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        await post(client, payload(firing))
        await settle(remediator)
        await post(client, payload({**firing, "status": "resolved"}))
        await settle(remediator)
        await post(client, payload(firing))  # a resend that lagged behind the resolve
        await settle(remediator)
        entries = await remediator.engine.store.recent(50)
    assert actions(calls) == 1
    assert decisions(entries) == ["executed", "resolved", "already_resolved"]


async def test_an_alert_no_rule_matches_pages_once_however_often_it_is_resent(tmp_path: Path) -> None:
    stray = alert(name="NobodyWroteARuleForThis")
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        for _ in range(3):
            await post(client, payload(stray))
            await settle(remediator)
    sent = pages(calls)
    assert len(sent) == 1
    assert sent[0]["reason"] == "no_rule"
    assert sent[0]["labels"]["alertname"] == "NobodyWroteARuleForThis"


async def test_two_alerts_on_one_escalate_only_rule_page_twice(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        await post(client, payload(alert(name="ApiLatencyHigh", service="api")))
        await settle(remediator)
        await post(client, payload(alert(name="ApiLatencyHigh", service="orders")))
        await settle(remediator)
    assert sorted(page["labels"]["service"] for page in pages(calls)) == ["api", "orders"]


async def test_a_cooldown_denial_escalates_once_per_incident(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base)
        rules = tuple(rule.model_copy(update={"cooldown_minutes": 60.0}) for rule in cfg.rules)
        async with remediator_client(cfg.model_copy(update={"rules": rules})) as (client, remediator):
            await post(client, payload(alert()))
            second = alert(starts="2026-11-22T04:00:00Z")  # another incident on the same target
            for _ in range(2):
                await post(client, payload(second))
                await settle(remediator)
    assert actions(calls) == 1
    assert [page["reason"] for page in pages(calls)] == ["cooldown"]


async def test_an_explicit_ignore_rule_is_the_only_silent_end_and_it_is_recorded(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        await post(client, payload(alert(name="Noise")))
        await settle(remediator)
        entries = await remediator.engine.store.recent(10)
    assert pages(calls) == []
    assert decisions(entries) == ["ignored"]


async def test_a_retry_runs_on_the_remediators_own_timer_without_any_resend(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base)
        rules = tuple(rule.model_copy(update={"retry_after_minutes": 0.01, "max_attempts": 2}) for rule in cfg.rules)
        async with remediator_client(cfg.model_copy(update={"rules": rules})) as (client, remediator):
            await post(client, payload(alert()))  # sent once, never again
            for _ in range(200):
                if actions(calls) >= 2:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # time for a third attempt, which max_attempts forbids
            entries = await remediator.engine.store.recent(50)
    assert actions(calls) == 2
    assert "timer" in [entry["event"] for entry in entries]


async def test_a_resolve_cancels_the_pending_retry(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base)
        rules = tuple(rule.model_copy(update={"retry_after_minutes": 0.01, "max_attempts": 3}) for rule in cfg.rules)
        async with remediator_client(cfg.model_copy(update={"rules": rules})) as (client, remediator):
            await post(client, payload(alert()))
            await settle(remediator)
            await post(client, payload({**alert(), "status": "resolved"}))
            await settle(remediator)
            await asyncio.sleep(1.5)  # past the retry's time
    assert actions(calls) == 1


async def test_a_reload_lowering_concurrency_applies_to_the_running_engine(tmp_path: Path) -> None:
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (_client, remediator):
        engine = remediator.engine
        lower = engine.config.model_copy(update={"limits": engine.config.limits.model_copy(update={"concurrency": 1})})
        from remediator.app import build_registry  # noqa: PLC0415

        await engine.reconfigure(lower, build_registry(lower))
        assert engine.slots.capacity == 1


async def test_a_p0_behind_a_thousand_warnings_in_the_same_payload_is_decided_among_the_first(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, limits={"actions_per_hour": 100, "concurrency": 2, "queue_size": 20000})
        async with remediator_client(cfg) as (client, remediator):
            warnings = [
                alert(name="Unmatched", priority="P3", severity="warning", instance=f"i{n}") for n in range(1000)
            ]
            urgent = alert(priority="P0", severity="critical")  # trigger-generation: an action
            status, _ = await post(client, payload(*warnings, urgent))  # one payload: all queued at once, P0 last
            assert status == 200
            await settle(remediator)
            entries = await remediator.engine.store.recent(10_000)
    order = [e["alertname"] for e in reversed(entries) if e["event"] == "decision"]
    assert len(order) == 1001
    assert order.index("StrategyGenerationStalled") < 2 * 2  # taken by one of the first workers, not after 1,000
    assert actions(calls) == 1


async def test_the_audit_stamps_when_an_action_started_apart_from_when_it_ended(tmp_path: Path) -> None:
    arrived: list[dt.datetime] = []

    async def slow_action(request: web.Request) -> web.Response:
        arrived.append(dt.datetime.now(dt.UTC))
        await asyncio.sleep(0.3)  # the action takes a while: its start and its end are apart
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/platform/generate", slow_action)
    async with served(app) as url, remediator_client(config(tmp_path, url)) as (client, remediator):
        await post(client, payload(alert()))
        await settle(remediator)
        entries = list(reversed(await remediator.engine.store.recent(50)))
    at = {e["event"]: dt.datetime.fromisoformat(e["at"]) for e in entries}
    assert [e["event"] for e in entries][:4] == ["received", "decision", "action_started", "action"]
    assert at["decision"] <= at["action_started"] <= arrived[0]
    assert at["action"] - at["action_started"] >= dt.timedelta(seconds=0.3)
