"""The rules page's live limits in a real browser (Debian's chromium, headless, Playwright), read from the real
state backends: the memory backend's SQLite-backed limits and a real Redis. Real webhooks run a rule into its
cooldown, drain its bucket and open another's breaker; the page shows each, and a POST to it does nothing."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser
from redis.asyncio import Redis

from common.web import free_port
from remediator.config import RateLimit, RemediatorConfig
from remediator.state import redis_backend
from remediator.state.base import Admission, LimitsQuery, RuleLimits
from remediator.state.redis_backend import RedisState
from tests.integration.test_console_approvals import served
from tests.integration.test_console_browser import browser, check_accessible, login
from tests.prereqs import unique
from tests.remediator_helpers import alert, config, payload, post, recorder, settle

pytestmark = pytest.mark.integration
__all__ = ["browser"]


def rules(tmp_path: Path, base: str) -> list[dict[str, Any]]:
    """The test config's rules, the collector reset with a 30 min cooldown and a bucket of two, and the escalating
    rule in dry run."""
    changes: dict[str, dict[str, Any]] = {
        "reset-collector": {"cooldown_minutes": 30, "rate": {"per_minute": 0.001, "burst": 2}},
        "broken-endpoint": {"retries": 0},
        "judgement": {"dry_run": True},
    }
    found = [r.model_dump(by_alias=True, exclude_defaults=True) for r in config(tmp_path, base).rules]
    return [{**r, **changes.get(r["name"], {})} for r in found]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The state settings of each backend: memory (its limits in a SQLite file) or a real Redis, under a prefix
    of its own that is deleted afterwards."""
    if request.param == "memory":
        yield {"state": "memory"}
        return
    url = request.getfixturevalue("redis_url")
    prefix = "{" + unique("console") + "}"
    yield {"state": "redis", "state_redis": {"url": url, "key_prefix": prefix}}
    client = Redis.from_url(url)
    keys = await client.keys(prefix + "*")
    if keys:
        await client.delete(*keys)
    await client.aclose()


def settings(tmp_path: Path, base: str, state: dict[str, Any]) -> RemediatorConfig:
    return config(
        tmp_path,
        base,
        rules=rules(tmp_path, base),
        circuit_breaker={"failures": 1, "open_minutes": 20},
        limits={"actions_per_hour": 100, "concurrency": 2, "queue_size": 100},
        **state,
    )


async def test_the_rules_page_shows_cooldowns_tokens_budget_and_breakers_from_the_state_backend(
    browser: Browser, backend: dict[str, Any], tmp_path: Path
) -> None:
    async with recorder() as (hook, calls), served(settings(tmp_path, hook, backend)) as (client, remediator, base):
        for labels in ({"collector": "binance"}, {"collector": "kraken"}, {}):
            name = "BrokenThing" if not labels else "CollectorFailed"
            status, _ = await post(client, payload(alert(name, **labels)))
            assert status == 200
            await settle(remediator)
        assert [path for path, _ in calls if "/platform/" in path] == [
            "/platform/collectors/binance/reset",
            "/platform/collectors/kraken/reset",
            "/platform/fail",
        ]
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await login(context, base)
        await page.goto(f"{base}/console/rules")
        assert "97 of 100 actions" in await page.locator("#budget-left").inner_text()
        reset = await page.locator("#rule-reset-collector td.left").inner_text()
        assert "Bucket: 0.0 of 2 token(s)" in reset  # drained: two resets, refilled at 0.001/min
        assert "Cooldowns running: 2" in reset
        for target in ("collector:binance", "collector:kraken"):
            assert f"{target} until" in reset
        assert "UTC" in reset
        assert "Breakers: all closed" in reset
        broken = await page.locator("#rule-broken-endpoint td.left").inner_text()
        assert "Breakers open or half-open: 1" in broken
        assert "broken-endpoint open 1 failure(s), half-open at" in broken
        assert "No cooldown running" in broken
        assert await page.locator("#rule-judgement .dry-run").count() == 1
        assert await page.locator("#rule-reset-collector .dry-run").count() == 0
        await check_accessible(page)
        await page.screenshot(path=tmp_path / f"rules-{backend['state']}.png", full_page=True)
        # The page is read-only: a POST (even with the session's CSRF token) is refused and claims nothing.
        csrf = await page.locator("form.logout input[name=csrf]").get_attribute("value")
        assert csrf
        answer = await page.request.post(f"{base}/console/rules", form={"csrf": csrf}, max_redirects=0)
        assert answer.status == 405
        await page.reload()
        assert "97 of 100 actions" in await page.locator("#budget-left").inner_text()
        await context.close()


async def test_a_half_open_breaker_and_its_running_trial_show_on_the_rules_page(
    browser: Browser, redis_url: str, tmp_path: Path
) -> None:
    prefix = "{" + unique("console") + "}"
    state = {"state": "redis", "state_redis": {"url": redis_url, "key_prefix": prefix}}
    async with recorder() as (hook, _), served(settings(tmp_path, hook, state)) as (client, remediator, base):
        await post(client, payload(alert("BrokenThing")))
        await settle(remediator)
        redis = remediator.engine.state
        assert isinstance(redis, RedisState)
        key = redis._key("breaker", "broken-endpoint:broken-endpoint")
        opened = int(await redis.redis.hget(key, "opened_at") or 0)
        await redis.redis.hset(key, "opened_at", opened - 21 * 60_000)  # as if its 20 min had passed
        context = await browser.new_context()
        page = await login(context, base)
        await page.goto(f"{base}/console/rules")
        broken = await page.locator("#rule-broken-endpoint td.left").inner_text()
        assert "half-open 1 failure(s), a trial may start" in broken
        await redis.redis.hset(key, "trial_until", opened + 3_600_000)
        await page.reload()
        broken = await page.locator("#rule-broken-endpoint td.left").inner_text()
        assert "half-open 1 failure(s), trial until" in broken
        await context.close()
        await redis.redis.delete(*await redis.redis.keys(prefix + "*"))


async def test_an_unreachable_state_backend_shows_the_limits_as_unknown(browser: Browser, tmp_path: Path) -> None:
    state = {"state": "redis", "state_redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "timeout_seconds": 0.5}}
    async with recorder() as (hook, _), served(settings(tmp_path, hook, state)) as (_, _remediator, base):
        context = await browser.new_context()
        page = await login(context, base)
        await page.goto(f"{base}/console/rules")
        assert urllib.parse.urlsplit(page.url).path == "/console/rules"
        assert "cannot be read now" in await page.get_by_role("alert").inner_text()
        assert "unknown of 100 actions" in await page.locator("#budget-left").inner_text()
        await context.close()


async def test_reading_redis_limits_changes_no_key_and_a_large_keyspace_is_read_bounded(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "{" + unique("limits") + "}"
    state = RedisState(redis_url, prefix, 2.0, 3600)
    rate = RateLimit(per_minute=1, burst=50)
    try:
        for i in range(30):
            claim = Admission(f"r:t{i}", 600, "r", rate, f"t{i}", 600, 100, "incident")
            assert await state.admit(claim, consume=True) is None
        await state.redis.zadd(state._key("budget"), {"long-ago": 1})  # out of the hour: a read must not prune it
        keys = sorted(await state.redis.keys(prefix + "*"))
        dumped = [await state.redis.dump(key) for key in keys]
        query = LimitsQuery((RuleLimits("r", rate, 600, re.compile("t.+")),), 100, 600)
        left = await state.limits_left(query)
        assert left.budget_left == 70
        assert len(left.rules[0].cooldowns) == 30
        assert left.rules[0].tokens == pytest.approx(20, abs=0.1)
        assert not left.truncated
        assert sorted(await state.redis.keys(prefix + "*")) == keys
        assert [await state.redis.dump(key) for key in keys] == dumped  # values untouched (TTLs are not in DUMP)
        assert await state.redis.zscore(state._key("budget"), "long-ago") == 1
        monkeypatch.setattr(redis_backend, "SCAN_COUNT", 1)
        monkeypatch.setattr(redis_backend, "SCAN_ROUNDS", 2)
        bounded = await state.limits_left(query)
        assert bounded.truncated
        assert len(bounded.rules[0].cooldowns) < 30
    finally:
        await state.redis.delete(*await state.redis.keys(prefix + "*"))
        await state.close()
