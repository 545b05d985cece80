"""Approvals against the incident's lock in Redis. A lock lost before the approved step is claimed (a failover,
while the step's `when` waited on a slow Prometheus; another replica may hold the incident now): the human who
approved is told so, in the console and through the API, never given a server error, and the step does not run.
A lock another holder keeps: the answer says busy, not "forged", and the same approval works once it is free."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser

from remediator.runtime.playbook import approval_id
from remediator.state.redis_backend import RedisState
from tests import processes
from tests.integration.test_console_approvals import served
from tests.integration.test_console_browser import browser, login
from tests.remediator_helpers import TOKEN, alert, config, payload, post, recorder, settle

pytestmark = pytest.mark.integration
__all__ = ["browser"]
ONE = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "1"]}]}}


def guarded_with_when(marker: Path) -> dict[str, Any]:
    """A rule whose one step (a real command that leaves a mark) waits for a human, then for its `when`."""
    return {
        "name": "purge-orders",
        "matchers": ['alertname="QueueDepthCritical"'],
        "steps": [
            {
                "name": "purge",
                "action": "command",
                "params": {"argv": ["sh", "-c", f"echo ran >> {marker}"], "timeout_seconds": 5},
                "approval": {"within_minutes": 30},
                "when": "vector(1) > 0",
            }
        ],
        "timeout_seconds": 20,
        "cooldown_minutes": 0,
        "retries": 0,
    }


@contextlib.asynccontextmanager
async def slow_prometheus(asked: asyncio.Event, answer: asyncio.Event) -> AsyncIterator[str]:
    """A Prometheus query API that, once asked, answers `1` only when `answer` is set."""

    async def query(_request: web.Request) -> web.Response:
        asked.set()
        await asyncio.wait_for(answer.wait(), 20)
        return web.json_response(ONE)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    async with processes.served(app) as url:
        try:
            yield url
        finally:
            answer.set()


async def lose_lock_while_the_when_waits(state: RedisState, asked: asyncio.Event, answer: asyncio.Event) -> None:
    """Once the approved step's `when` is being asked, delete the incident's lock (as a failover would), then let
    Prometheus answer."""
    await asyncio.wait_for(asked.wait(), 20)
    names = [n async for n in state.redis.scan_iter(match=state._key("lock", "*"))]
    deleted = await state.redis.delete(*names) if names else 0
    answer.set()
    assert deleted == 1, "the approval was decided under no lock"


@pytest.mark.parametrize("where", ["console", "api"])
async def test_an_approval_whose_lock_is_lost_before_its_step_is_claimed_is_answered_409_and_runs_nothing(
    browser: Browser, tmp_path: Path, redis_url: str, where: str
) -> None:
    prefix = "{tradeops-test-" + uuid.uuid4().hex + "}"
    marker = tmp_path / "ran"
    asked, answer = asyncio.Event(), asyncio.Event()
    async with recorder() as (hook, _calls), slow_prometheus(asked, answer) as prometheus:
        cfg = config(
            tmp_path,
            hook,
            rules=[guarded_with_when(marker)],
            external_url="https://tradeops.example/",
            prometheus={"url": prometheus},
            state="redis",
            state_redis={"url": redis_url, "key_prefix": prefix},
        )
        async with served(cfg) as (client, remediator, base):
            status, _ = await post(client, payload(alert(name="QueueDepthCritical", queue="orders", priority="P0")))
            assert status == 200
            await settle(remediator)
            state = remediator.engine.state
            assert isinstance(state, RedisState)
            [incident] = [i async for i in _open_incidents(state)]
            public_id = approval_id(incident["key"], incident["approval"]["nonce"])
            losing = asyncio.create_task(lose_lock_while_the_when_waits(state, asked, answer))
            if where == "console":
                context = await browser.new_context()
                page = await login(context, base)
                await page.goto(f"{base}/console/approvals")
                async with page.expect_response(lambda r: r.request.method == "POST") as answered:
                    await page.get_by_role("button", name="Approve").click()
                status, text = (await answered.value).status, await page.locator("main").inner_text()
                await context.close()
            else:
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        f"{base}/api/v1/approvals/{public_id}",
                        json={"decision": "approve", "user": "on-call"},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as response,
                ):
                    status, text = response.status, await response.text()
            await losing
            assert status == 409, text
            assert "another replica took this incident over" in text.lower()
            await settle(remediator)
            assert not marker.exists()  # its claim was refused: the step never ran
            await state.redis.delete(*[n async for n in state.redis.scan_iter(match=prefix + "*")])


async def _open_incidents(state: RedisState) -> Any:
    """The incidents kept in Redis, as records."""
    async for name in state.redis.scan_iter(match=state._key("incident", "*")):
        found = await state.incident(name.decode().removeprefix(state._key("incident", "")))
        if found is not None:
            yield {"key": found.key, "approval": found.approval}


async def test_an_approval_while_another_holder_keeps_the_incident_locked_is_answered_busy_and_works_later(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-test-" + uuid.uuid4().hex + "}"
    marker = tmp_path / "ran"
    rule = guarded_with_when(marker) | {"timeout_seconds": 2}
    del rule["steps"][0]["when"]
    rule["steps"][0]["params"]["timeout_seconds"] = 1
    async with recorder() as (hook, _calls):
        cfg = config(
            tmp_path,
            hook,
            rules=[rule],
            state="redis",
            state_redis={"url": redis_url, "key_prefix": prefix, "lock_margin_seconds": 1},
        )
        async with served(cfg) as (client, remediator, base):
            assert (await post(client, payload(alert(name="QueueDepthCritical", queue="orders"))))[0] == 200
            await settle(remediator)
            state = remediator.engine.state
            assert isinstance(state, RedisState)
            [incident] = [i async for i in _open_incidents(state)]
            public_id = approval_id(incident["key"], incident["approval"]["nonce"])
            lock = state._key("lock", incident["key"])
            await state.redis.set(lock, "a-live-holder-elsewhere", px=60_000)  # held, and renewed, elsewhere
            async with aiohttp.ClientSession() as http:
                url, headers = f"{base}/api/v1/approvals/{public_id}", {"Authorization": f"Bearer {TOKEN}"}
                async with http.post(url, json={"decision": "approve"}, headers=headers) as response:
                    status, answer = response.status, await response.json()
                assert (status, answer["result"]) == (409, "busy"), answer
                assert not marker.exists()
                await state.redis.delete(lock)  # the other holder let go
                async with http.post(url, json={"decision": "approve"}, headers=headers) as response:
                    status, answer = response.status, await response.json()
            assert (status, answer["result"]) == (200, "approved"), answer
            assert marker.read_text() == "ran\n"
            await state.redis.delete(*[n async for n in state.redis.scan_iter(match=prefix + "*")])
