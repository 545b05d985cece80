"""Adversarial tests of the approval guarantee against real tradeops-remediator processes: a step that needs
approval runs only if a human approved it in time, exactly once, and only while its incident is still open; a
denial, an expiry or anything going wrong pages a human; nothing is lost. Faults: concurrent and cross-replica
approvals (real Redis, real PostgreSQL), approvals racing the deadline and a resolve, a SIGKILL while the approved
step runs, a reload that changes or removes the step, and hostile ids and clients."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import signal
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
from tests.integration.test_adversary_guarantees import (
    REDIS,
    Running,
    audit,
    key_of,
    kill,
    remediator,
    send,
    until,
)
from tests.processes import private_redis, served
from tests.remediator_helpers import TOKEN, alert, payload, recording

pytestmark = pytest.mark.integration
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
SLOTS = [str(i) for i in range(8)]


@dataclass
class Stand:
    """The platform a guarded step calls, the pager, and a Prometheus query API whose answers can be held."""

    url: str = ""
    actions: list[str] = field(default_factory=list)  # the path of every platform call
    action_started: asyncio.Event = field(default_factory=asyncio.Event)
    action_gate: asyncio.Event | None = None  # when set by the test, a running action finishes
    query_started: asyncio.Event = field(default_factory=asyncio.Event)
    query_gate: asyncio.Event | None = None  # when set by the test, a held query answers
    pages: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def stand() -> AsyncIterator[Stand]:
    state = Stand()

    async def act(request: web.Request) -> web.Response:
        state.actions.append(request.path)
        state.action_started.set()
        if state.action_gate is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.action_gate.wait(), 30)
        return web.json_response({})

    async def query(_request: web.Request) -> web.Response:
        state.query_started.set()
        if state.query_gate is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.query_gate.wait(), 30)
        result = [{"metric": {}, "value": [dt.datetime.now(dt.UTC).timestamp(), "1"]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    app = web.Application()
    app.router.add_post("/platform/{tail:.*}", act)
    app.router.add_post("/escalations", recording(state.pages))
    app.router.add_route("*", "/api/v1/query", query)
    async with served(app, handler_cancellation=True) as url:
        state.url = url
        try:
            yield state
        finally:
            for gate in (state.action_gate, state.query_gate):
                if gate is not None:
                    gate.set()


def guarded_step(url: str, within_minutes: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": "purge",
        "action": "http_request",
        "params": {"method": "POST", "url": f"{url}/platform/purge/{{slot}}", "timeout_seconds": 2},
        "approval": {"within_minutes": within_minutes},
        **extra,
    }


def approval_config(
    tmp_path: Path, url: str, within_minutes: float = 30, steps: list[dict[str, Any]] | None = None, **rule: Any
) -> dict[str, Any]:
    """One rule whose only step needs a human's approval, a generic pager, and the stand's Prometheus."""
    return {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "allowed_url_prefixes": [f"{url}/platform/"],
        "prometheus": {"url": url, "timeout_seconds": 30},
        "limits": {"actions_per_hour": 100_000, "concurrency": 4},
        "escalation": {
            "webhooks": [{"url": f"{url}/escalations", "shape": "generic"}],
            "check_interval_seconds": 0.05,
            "backoff_initial_seconds": 0.1,
            "backoff_max_seconds": 0.5,
            "max_pages_per_minute": 10_000,
        },
        "rules": [
            {
                "name": "guarded",
                "matchers": ['alertname="QueueDepthCritical"'],
                "steps": steps if steps is not None else [guarded_step(url, within_minutes)],
                "label_params": {"slot": {"label": "slot", "allowed": SLOTS}},
                "target": "queue:{slot}",
                "cooldown_minutes": 0,
                "rate": {"per_minute": 10_000, "burst": 1_000},
                "retries": 0,
                "timeout_seconds": 10,
                "escalate_after_minutes": 600,
                **rule,
            }
        ],
    }


def redis_approval_config(tmp_path: Path, url: str, prefix: str, dsn: str, name: str, **kw: Any) -> dict[str, Any]:
    config = approval_config(tmp_path, url, **kw)
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


def firing(slot: str = "0") -> dict[str, Any]:
    return alert(name="QueueDepthCritical", slot=slot)


def pages_of(st: Stand, raw: dict[str, Any], reason: str | None = None) -> list[dict[str, Any]]:
    """The trigger pages of one incident (of one reason, if given)."""
    incident = key_of(raw, "guarded")
    found = [p for p in st.pages if p.get("incident") == incident and not p.get("resolved")]
    return [p for p in found if reason is None or p.get("reason") == reason]


def resolve_pages(st: Stand, raw: dict[str, Any]) -> list[dict[str, Any]]:
    incident = key_of(raw, "guarded")
    return [p for p in st.pages if p.get("incident") == incident and p.get("resolved")]


async def approval_id(st: Stand, raw: dict[str, Any]) -> tuple[str, dt.datetime]:
    """The approval id and deadline the incident's approval_needed page carries (waited for)."""
    await until(lambda: pages_of(st, raw, "approval_needed"), 15, "the approval_needed page")
    detail = pages_of(st, raw, "approval_needed")[-1]["detail"]
    found = re.search(r"until (\S+); approval id (\S+) ", detail)
    assert found is not None, detail
    return found.group(2), dt.datetime.fromisoformat(found.group(1))


async def decide(
    running: Running, approval: str, decision: str = "approve", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST the decision; return the status and the JSON answer (or the text when it is not JSON)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{running.url}/api/v1/approvals/{approval}",
            json={"decision": decision, "user": "alice"},
            headers=HEADERS if headers is None else headers,
        ) as response,
    ):
        body: Any = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def ran(st: Stand, slot: str = "0") -> int:
    return st.actions.count(f"/platform/purge/{slot}")


# 1. Exactly once: the same approval at once, in one process and at two replicas -------------------------------


async def test_the_same_approval_posted_ten_times_at_once_runs_the_step_once(tmp_path: Path) -> None:
    async with stand() as st:
        st.action_gate = asyncio.Event()
        async with remediator(tmp_path, approval_config(tmp_path, st.url)) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            answers = asyncio.gather(*(decide(rem, approval) for _ in range(10)))
            await asyncio.wait_for(st.action_started.wait(), 10)
            await asyncio.sleep(0.5)  # every other POST is in by now, waiting or answered
            st.action_gate.set()
            results = await answers
            await asyncio.sleep(0.5)
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] + [409] * 9, results
        assert ran(st) == 1


async def test_two_redis_replicas_given_the_same_approval_at_once_run_the_step_once(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{appr-" + uuid.uuid4().hex[:10] + "}"
    async with stand() as st:
        st.action_gate = asyncio.Event()
        a_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-a")
        b_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-b")
        async with remediator(tmp_path, a_cfg, "appr-a") as a, remediator(tmp_path, b_cfg, "appr-b") as b:
            await send(a, firing())
            approval, _ = await approval_id(st, firing())
            answers = asyncio.gather(*(decide(replica, approval) for replica in (a, b) for _ in range(5)))
            await asyncio.wait_for(st.action_started.wait(), 10)
            await asyncio.sleep(1.0)
            st.action_gate.set()
            results = await answers
            await asyncio.sleep(0.5)
        assert [status for status, _ in results].count(200) == 1, results
        assert all(status == 409 for status, _ in results if status != 200), results
        assert ran(st) == 1


# 2. In time: approvals racing the deadline ----------------------------------------------------------------------


OFFSETS = [-0.3, -0.1, -0.03, 0.0, 0.01, 0.03, 0.1, 0.3]  # seconds around each approval's deadline


async def race_the_deadline(st: Stand, senders: list[Running]) -> list[tuple[int, Any]]:
    """Open one approval per slot, then approve each at its offset from its own deadline, at the replicas in
    turn (whose timers expire the same approvals meanwhile)."""
    alerts = [firing(slot) for slot in SLOTS]
    await send(senders[0], *alerts)
    found = [await approval_id(st, raw) for raw in alerts]

    async def at_offset(i: int, approval: str, until_at: dt.datetime, offset: float) -> tuple[int, Any]:
        delay = (until_at - dt.datetime.now(dt.UTC)).total_seconds() + offset
        await asyncio.sleep(max(0.0, delay))
        return await decide(senders[i % len(senders)], approval)

    return await asyncio.gather(
        *(at_offset(i, a, u, o) for i, ((a, u), o) in enumerate(zip(found, OFFSETS, strict=True)))
    )


def assert_ran_or_expired(st: Stand, results: list[tuple[int, Any]]) -> None:
    for slot, (status, body) in zip(SLOTS, results, strict=True):
        expired = pages_of(st, firing(slot), "approval_expired")
        assert (ran(st, slot), len(expired)) in {(1, 0), (0, 1)}, (slot, status, body, st.pages)
        assert (status == 200) == (ran(st, slot) == 1), (slot, status, body)


async def settled(st: Stand) -> None:
    await until(
        lambda: all(ran(st, s) or pages_of(st, firing(s), "approval_expired") for s in SLOTS),
        15,
        "every incident ran or paged its expiry",
    )
    await asyncio.sleep(1.0)  # room for a late run or a second page


async def test_approvals_racing_the_deadline_at_two_redis_replicas_either_run_or_page_the_expiry(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{appr-" + uuid.uuid4().hex[:10] + "}"
    async with stand() as st:
        a_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-a", within_minutes=0.05)
        b_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-b", within_minutes=0.05)
        async with remediator(tmp_path, a_cfg, "appr-a") as a, remediator(tmp_path, b_cfg, "appr-b") as b:
            results = await race_the_deadline(st, [a, b])
            await settled(st)
        assert_ran_or_expired(st, results)


async def test_approvals_racing_the_deadline_either_run_or_page_the_expiry_never_both_never_neither(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url, within_minutes=0.04)  # 2.4 s
        async with remediator(tmp_path, config) as rem:
            results = await race_the_deadline(st, [rem])
            await settled(st)
        assert_ran_or_expired(st, results)


async def test_an_expiry_after_the_still_firing_page_still_pages_the_expiry(tmp_path: Path) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url, within_minutes=0.03, escalate_after_minutes=0.005)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            await until(lambda: pages_of(st, firing(), "still_firing"), 15, "the still-firing page")
            await until(lambda: pages_of(st, firing(), "approval_expired"), 15, "the expiry's page")
        assert ran(st) == 0


async def test_a_denial_after_the_still_firing_page_still_pages_the_denial(tmp_path: Path) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url, within_minutes=30, escalate_after_minutes=0.005)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            await until(lambda: pages_of(st, firing(), "still_firing"), 15, "the still-firing page")
            status, body = await decide(rem, approval, "deny")
            assert (status, body["result"]) == (200, "denied")
            await until(lambda: pages_of(st, firing(), "approval_denied"), 15, "the denial's page")
        assert ran(st) == 0


# 3. Only while open: approvals after and during a resolve --------------------------------------------------------


async def test_an_approval_after_the_resolve_does_not_run_and_the_approval_page_is_resolved(tmp_path: Path) -> None:
    async with stand() as st, remediator(tmp_path, approval_config(tmp_path, st.url)) as rem:
        await send(rem, firing())
        approval, _ = await approval_id(st, firing())
        await send(rem, {**firing(), "status": "resolved"})
        await until(lambda: resolve_pages(st, firing()), 15, "the approval page's resolve")
        status, body = await decide(rem, approval)
        await asyncio.sleep(0.5)
    assert status == 409, body
    assert ran(st) == 0


async def test_a_resolve_accepted_while_the_approved_steps_precondition_is_queried_stops_the_step(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        st.query_gate = asyncio.Event()
        steps = [guarded_step(st.url, 30, when="vector(1)")]
        async with remediator(tmp_path, approval_config(tmp_path, st.url, steps=steps)) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            answer = asyncio.ensure_future(decide(rem, approval))
            await asyncio.wait_for(st.query_started.wait(), 10)  # the approved step re-checks its `when`
            await send(rem, {**firing(), "status": "resolved"})  # acknowledged while the query is out
            await asyncio.sleep(0.3)
            st.query_gate.set()
            await answer
            entries = await until_entries(rem, lambda e: any(x["decision"] == "resolved" for x in e), "the resolve")
            await asyncio.sleep(0.5)
        assert ran(st) == 0, entries


async def until_entries(running: Running, condition: Any, what: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for _ in range(150):
        entries = await audit(running)
        if condition(entries):
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within 15 s: {what}")


# 4. A SIGKILL while the approved step runs -----------------------------------------------------------------------


async def test_a_sigkill_while_the_approved_step_runs_neither_reruns_it_nor_forgets_the_incident(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        st.action_gate = asyncio.Event()
        config = approval_config(tmp_path, st.url, timeout_seconds=3)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            answer = asyncio.ensure_future(decide(rem, approval))
            await asyncio.wait_for(st.action_started.wait(), 10)
            await kill(rem)  # mid-step: its outcome is never recorded
            with contextlib.suppress(aiohttp.ClientError):
                await answer
        paged_before = len(pages_of(st, firing()))
        async with remediator(tmp_path, config) as rem:
            replay = await decide(rem, approval)
            await until(lambda: len(pages_of(st, firing())) > paged_before, 30, "a page about the interrupted step")
            entries = await audit(rem)
            await asyncio.sleep(1.0)
        assert replay[0] == 409, replay
        assert ran(st) == 1
        approvals = [(e["decision"], e["detail"]) for e in entries if e["event"] == "approval"]
        assert approvals[0] == ("approved", "purge: by token:alice"), approvals  # on record before the step ran
        assert [decision for decision, _ in approvals] == ["approved", "interrupted"], approvals
        assert pages_of(st, firing())[-1]["reason"] == "approval_interrupted"


async def test_a_replica_killed_while_the_approved_step_runs_is_taken_over_without_a_rerun_and_pages(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{appr-" + uuid.uuid4().hex[:10] + "}"
    async with stand() as st:
        st.action_gate = asyncio.Event()
        kw: dict[str, Any] = {"timeout_seconds": 3}
        a_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-a", **kw)
        b_cfg = redis_approval_config(tmp_path, st.url, prefix, postgres_dsn, "appr-b", **kw)
        async with remediator(tmp_path, b_cfg, "appr-b") as b:
            async with remediator(tmp_path, a_cfg, "appr-a") as a:
                await send(a, firing())
                approval, _ = await approval_id(st, firing())
                answer = asyncio.ensure_future(decide(a, approval))
                await asyncio.wait_for(st.action_started.wait(), 10)
                a.child.send_signal(signal.SIGKILL)
                await a.child.wait()
                with contextlib.suppress(aiohttp.ClientError):
                    await answer
            paged_before = len(pages_of(st, firing()))
            replay = await decide(b, approval)
            await until(lambda: len(pages_of(st, firing())) > paged_before, 30, "B pages the interrupted step")
            await asyncio.sleep(1.0)
        assert replay[0] == 409, replay
        assert ran(st) == 1


async def test_an_approval_while_redis_is_down_answers_503_runs_nothing_and_stays_decidable_once_it_is_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    async with stand() as st:
        config = approval_config(tmp_path, st.url, within_minutes=30)
        redis_url = f"redis://127.0.0.1:{port}/0"
        config.update(
            {"state": "redis", "state_redis": {"url": redis_url, "lock_margin_seconds": 1, "timeout_seconds": 1}}
        )
        async with private_redis(tmp_path, port) as server, remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            server.send_signal(signal.SIGSTOP)  # Redis hangs: every call times out
            try:
                down = await decide(rem, approval)
            finally:
                server.send_signal(signal.SIGCONT)
            assert st.actions == []
            back = await decide(rem, approval)
            replay = await decide(rem, approval)
            await asyncio.sleep(0.3)
    assert down[0] == 503, down
    assert isinstance(down[1], dict), down
    assert (back[0], back[1]["result"]) == (200, "approved"), back
    assert replay[0] == 409, replay
    assert ran(st) == 1


# 5. A reload while the approval is pending -----------------------------------------------------------------------


async def reload(running: Running, path: Path, config: dict[str, Any]) -> None:
    """Rewrite the config file and SIGHUP the process; wait until its log says the reload was applied."""

    def reloads() -> int:
        return sum(log.read_text().count("msg=reloaded") for log in path.parent.glob("*.log"))

    before = reloads()
    path.write_text(yaml.safe_dump(config))
    running.child.send_signal(signal.SIGHUP)
    await until(lambda: reloads() > before, 15, "the reload applied")


async def test_an_approval_given_after_a_reload_changed_the_step_does_not_run_the_new_step_and_pages(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            changed = approval_config(
                tmp_path,
                st.url,
                steps=[{**guarded_step(st.url, 30), "params": {"method": "POST", "url": f"{st.url}/platform/halt"}}],
            )
            await reload(rem, tmp_path / "remediator.yml", changed)
            paged_before = len(pages_of(st, firing()))
            status, body = await decide(rem, approval)
            assert st.actions == [], st.actions  # the decision answers once the step would have run
            await until(lambda: len(pages_of(st, firing())) > paged_before, 15, "a page: the approval is void")
            await asyncio.sleep(0.5)
        assert status == 409, body
        assert st.actions == [], st.actions
        assert pages_of(st, firing())[-1]["reason"] == "approval_void"


async def test_an_approval_given_after_a_reload_removed_the_rule_runs_nothing_and_a_human_is_paged(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            await reload(rem, tmp_path / "remediator.yml", {**config, "rules": []})
            paged_before = len(pages_of(st, firing()))
            status, body = await decide(rem, approval)
            await until(lambda: len(pages_of(st, firing())) > paged_before, 15, "a page: the approval is void")
            await asyncio.sleep(0.5)
        assert status in {404, 409}, body
        assert st.actions == [], st.actions


async def test_an_approval_given_after_a_reload_turned_on_dry_run_runs_nothing_for_real_and_pages(
    tmp_path: Path,
) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url)
        async with remediator(tmp_path, config) as rem:
            await send(rem, firing())
            approval, _ = await approval_id(st, firing())
            await reload(rem, tmp_path / "remediator.yml", {**config, "dry_run": True})
            paged_before = len(pages_of(st, firing()))
            status, body = await decide(rem, approval)
            assert st.actions == [], st.actions
            await until(lambda: len(pages_of(st, firing())) > paged_before, 15, "a page: the step was not run")
            await asyncio.sleep(0.5)
        assert (status, body["result"]) == (200, "approved")  # the human's decision is recorded as given
        assert st.actions == [], st.actions
        assert "dry run" in pages_of(st, firing())[-1]["detail"], pages_of(st, firing())[-1]


# 6. Hostile ids and clients --------------------------------------------------------------------------------------


async def test_hostile_approval_ids_get_clear_answers_and_never_run_a_step(tmp_path: Path) -> None:
    async with stand() as st:
        async with remediator(tmp_path, approval_config(tmp_path, st.url)) as rem:
            await send(rem, firing("0"), firing("1"))
            mine, _ = await approval_id(st, firing("0"))
            other, _ = await approval_id(st, firing("1"))
            crossed = mine.partition(".")[0] + "." + other.partition(".")[2]  # 0's incident, 1's nonce
            hostile = [
                crossed,
                mine.partition(".")[0] + "." + "A" * 32,
                mine + "x",
                "x" * 3000,
                mine.partition(".")[0] + "." + "x" * 3000,
                "%C3%A9.abc",  # é: not base64
                "w6k." + "%C3%A9",  # a unicode nonce
                "AA." + "%00",
                "%00.%00",
                "YQ.",  # no nonce
                ".YQ",  # no incident
                mine.partition(".")[0] + ".%ED%A0%80",  # a lone surrogate's bytes
            ]
            answers = [await decide(rem, approval) for approval in hostile]
            hostile_users = []
            async with aiohttp.ClientSession() as http:
                for user in ["x" * 129, "alice\nlevel=error msg=forged", "\u202eecila", 42]:
                    body = {"decision": "approve", "user": user}
                    async with http.post(f"{rem.url}/api/v1/approvals/{mine}", json=body, headers=HEADERS) as response:
                        hostile_users.append(response.status)
            unauthenticated = await decide(rem, mine, headers={})
            wrong_token = await decide(rem, mine, headers={"Authorization": "Bearer not-the-token"})
            basic = await decide(rem, mine, headers={"Authorization": "Basic YWxpY2U6cGFzcw=="})
            assert ran(st, "0") == 0
            assert ran(st, "1") == 0
            genuine = await decide(rem, other)  # the other incident's own approval still works, once
            await asyncio.sleep(0.3)
        for approval, (status, body) in zip(hostile, answers, strict=True):
            assert status in {400, 404}, (approval[:60], status, body)
            assert isinstance(body, dict), (approval[:60], body)
            assert body.get("error"), (approval[:60], body)
        assert hostile_users == [400, 400, 400, 400]
        assert unauthenticated[0] == 401
        assert wrong_token[0] == 401
        assert basic[0] == 401
        assert genuine[0] == 200, genuine
        assert ran(st, "0") == 0
        assert ran(st, "1") == 1


async def test_without_any_authentication_configured_an_approval_is_refused(tmp_path: Path) -> None:
    async with stand() as st:
        config = approval_config(tmp_path, st.url)
        config.pop("webhook_token")
        config["allow_unauthenticated"] = True
        async with remediator(tmp_path, config) as rem:
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{rem.url}/webhook", json=payload(firing())) as response,
            ):
                assert response.status == 200
            approval, _ = await approval_id(st, firing())
            status, body = await decide(rem, approval, headers={})
            await asyncio.sleep(0.3)
        assert status in {401, 403}, body
        assert ran(st) == 0


async def test_a_console_post_without_a_session_or_its_csrf_token_runs_nothing_even_with_the_bearer_token(
    tmp_path: Path,
) -> None:
    async with stand() as st, remediator(tmp_path, approval_config(tmp_path, st.url)) as rem:
        await send(rem, firing())
        approval, _ = await approval_id(st, firing())
        answers = []
        async with aiohttp.ClientSession() as http:
            for headers, form in [
                ({}, {"decision": "approve"}),  # a cross-site form: no cookie
                ({"Origin": "https://evil.example"}, {"decision": "approve", "csrf": "guess"}),
                (HEADERS, {"decision": "approve"}),  # the token is no console session
                ({**HEADERS, "Cookie": "tradeops_session=forged"}, {"decision": "approve", "csrf": "x"}),
            ]:
                async with http.post(
                    f"{rem.url}/console/approvals/{approval}", data=form, headers=headers, allow_redirects=False
                ) as response:
                    answers.append(response.status)
        still = await decide(rem, approval, "deny")  # the approval is untouched: it can still be decided
    assert answers == [403, 403, 403, 403], answers
    assert ran(st) == 0
    assert (still[0], still[1]["result"]) == (200, "denied")
