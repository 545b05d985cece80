"""Approvals in the console, in a real browser (Debian's chromium, headless, driven by Playwright) against a
remediator on loopback whose guarded step calls a real loopback HTTP component and whose pager is a loopback
webhook: approved in the browser the step runs and the timeline says who approved; denied it escalates; the page's
link goes through the login and back; forged, replayed and CSRF-less attempts change nothing. Screenshots are saved
in the test's tmp folder."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from common.webconfig import WebConfig
from remediator.api.web import Remediator, build_app
from remediator.app import build_engine
from remediator.audit.sqlite import SqliteStore
from remediator.config import RemediatorConfig
from remediator.metrics import RemediatorMetrics
from remediator.state.incident import now
from tests.integration.test_console_browser import browser, check_accessible, login, publish
from tests.remediator_helpers import alert, config, payload, post, recorder, settle

pytestmark = pytest.mark.integration
__all__ = ["browser"]  # the fixture, shared with the console's other browser tests
Calls = list[tuple[str, Any]]
PASSWORD = "correct horse battery staple"


def guarded(base: str) -> dict[str, Any]:
    """A rule whose one step (an HTTP call to the loopback component) waits for a human."""
    return {
        "name": "purge-orders",
        "matchers": ['alertname="QueueDepthCritical"'],
        "steps": [
            {
                "name": "purge",
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base}/platform/purge"},
                "approval": {"within_minutes": 30},
            }
        ],
        "cooldown_minutes": 0,
        "rate": {"per_minute": 600, "burst": 100},
        "retries": 0,
    }


def settings(tmp_path: Path, base: str) -> RemediatorConfig:
    return config(tmp_path, base, rules=[guarded(base)], external_url="https://tradeops.example/")


@asynccontextmanager
async def served(
    cfg: RemediatorConfig, web_config: WebConfig | None = None
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Remediator, str]]:
    """A remediator on loopback (with the web config, if any); yield its client, the Remediator and its URL."""
    remediator = Remediator(build_engine(cfg, RemediatorMetrics()), None)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(build_app(remediator, web_config=web_config))
    )
    await client.start_server()
    try:
        yield client, remediator, str(client.make_url("")).rstrip("/")
    finally:
        await client.close()


def pages(calls: Calls, reason: str) -> list[dict[str, Any]]:
    return [body for path, body in calls if path == "/escalations" and body.get("reason") == reason]


def purges(calls: Calls) -> int:
    return sum(1 for path, _ in calls if path == "/platform/purge")


def approval_link(calls: Calls, decision: str = "approve") -> str:
    """The approval link the page carried, as a path on the remediator."""
    (page,) = pages(calls, "approval_needed")
    found = re.search(
        rf"https://tradeops\.example(/approvals/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\?decision={decision})", page["detail"]
    )
    assert found is not None, page["detail"]
    return found.group(1)


async def pending(client: TestClient[web.Request, web.Application], remediator: Remediator) -> None:
    status, _ = await post(client, payload(alert(name="QueueDepthCritical", queue="orders", priority="P0")))
    assert status == 200
    await settle(remediator)


async def timeline(page: Page, base: str) -> str:
    await page.goto(f"{base}/console/incidents")
    await page.get_by_role("link", name="QueueDepthCritical").first.click()
    await page.wait_for_load_state()
    return await page.locator("ol.timeline").inner_text()


async def test_a_step_approved_in_the_browser_runs_on_the_real_component_and_the_timeline_shows_who(
    browser: Browser, tmp_path: Path
) -> None:
    async with recorder() as (hook, calls), served(settings(tmp_path, hook)) as (client, remediator, base):
        await pending(client, remediator)
        assert purges(calls) == 0  # nothing runs before a human says so
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await login(context, base)
        waiting = await page.locator("section.approvals").inner_text()
        assert "QueueDepthCritical: step purge (http_request on purge-orders/purge)" in waiting
        await page.screenshot(path=tmp_path / "incidents-with-approval.png", full_page=True)
        await page.get_by_role("link", name="Approvals", exact=True).click()
        await page.wait_for_load_state()
        card = await page.locator("article.approval").inner_text()
        for seen in (
            "purge",
            "http_request",
            "purge-orders/purge",
            "QueueDepthCritical",
            "queue",
            "orders",
            f"{hook}/platform/purge",
            "approval_pending",
            "UTC",
            "local",
        ):
            assert seen in card, seen
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "approvals.png", full_page=True)
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_load_state()
        assert "Approved" in await page.get_by_role("status").inner_text()
        await page.screenshot(path=tmp_path / "approved.png", full_page=True)
        await settle(remediator)
        assert purges(calls) == 1
        await page.goto(f"{base}/console/approvals")
        assert "Nothing waits for approval" in await page.locator("main").inner_text()
        seen = await timeline(page, base)
        assert "purge: by console:token" in seen
        await page.screenshot(path=tmp_path / "timeline-approved.png", full_page=True)
        await context.close()
    assert not pages(calls, "approval_denied")


async def test_a_step_denied_in_the_browser_never_runs_and_escalates_to_the_pager(
    browser: Browser, tmp_path: Path
) -> None:
    async with recorder() as (hook, calls), served(settings(tmp_path, hook)) as (client, remediator, base):
        await pending(client, remediator)
        context = await browser.new_context()
        page = await login(context, base)
        await page.goto(f"{base}/console/approvals")
        await page.get_by_role("button", name="Deny").click()
        await page.wait_for_load_state()
        assert "Denied" in await page.get_by_role("status").inner_text()
        await settle(remediator)
        assert "purge: by console:token" in await timeline(page, base)
        await context.close()
    assert purges(calls) == 0
    assert len(pages(calls, "approval_denied")) == 1


async def test_the_pages_approval_link_goes_through_the_login_and_back_and_records_the_web_config_user(
    browser: Browser, tmp_path: Path
) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = WebConfig(basic_auth_users={"alice": hashed})
    async with (
        recorder() as (hook, calls),
        served(settings(tmp_path, hook), web_config) as (client, remediator, base),
    ):
        await pending(client, remediator)
        link = approval_link(calls)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(base + link)
        assert urllib.parse.urlsplit(page.url).path == "/console/login"
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Webhook token or password").fill("wrong")
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_load_state()
        assert "not accepted" in await page.get_by_role("alert").inner_text()
        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Webhook token or password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_load_state()
        landed = urllib.parse.urlsplit(page.url)
        assert (landed.path, landed.query) == ("/console" + link.split("?")[0], "decision=approve")
        assert "Approve this step?" in await page.locator("h1").inner_text()
        assert purges(calls) == 0  # opening the link runs nothing
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "confirm.png", full_page=True)
        await page.get_by_role("button", name="Confirm: approve").click()
        await page.wait_for_load_state()
        assert "Approved" in await page.get_by_role("status").inner_text()
        await settle(remediator)
        assert purges(calls) == 1
        assert "purge: by console:alice" in await timeline(page, base)
        # The same link again (a replay) says so and offers nothing to click.
        await page.goto(base + link)
        assert "already decided" in await page.get_by_role("alert").inner_text()
        assert await page.get_by_role("button", name="Confirm: approve").count() == 0
        await context.close()
    assert purges(calls) == 1


async def test_the_login_sends_only_to_console_paths_and_no_token_login_without_a_token(
    browser: Browser, tmp_path: Path
) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = WebConfig(basic_auth_users={"alice": hashed})
    cfg = settings(tmp_path, "http://127.0.0.1:1").model_copy(update={"webhook_token": None})
    async with served(cfg, web_config) as (_, _remediator, base):
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{base}/console/login")
        await page.get_by_label("Webhook token or password").fill("anything at all")
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_load_state()
        assert urllib.parse.urlsplit(page.url).path == "/console/login"  # users configured, no token: refused
        for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/console@evil.example"):
            await page.goto(f"{base}/console/login?next={urllib.parse.quote(hostile, safe='')}")
            await page.get_by_label("User name").fill("alice")
            await page.get_by_label("Webhook token or password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_load_state()
            landed = urllib.parse.urlsplit(page.url)
            assert (f"{landed.scheme}://{landed.netloc}", landed.path) == (base, "/console/incidents"), hostile
        await context.close()


async def test_a_forged_id_or_a_post_without_the_csrf_token_changes_nothing_and_runs_nothing(
    browser: Browser, tmp_path: Path
) -> None:
    async with recorder() as (hook, calls), served(settings(tmp_path, hook)) as (client, remediator, base):
        await pending(client, remediator)
        link = approval_link(calls)
        approval = link.split("/")[2].split("?")[0]
        key, _, nonce = approval.partition(".")
        first, second = await browser.new_context(), await browser.new_context()
        page = await login(first, base)
        other = await login(second, base)
        other_csrf = await other.locator("form.logout input[name=csrf]").get_attribute("value")
        assert other_csrf
        forged = f"{key}.{'A' * len(nonce)}"
        for wrong in (forged, "not-an-id", "eA.b"):
            await page.goto(f"{base}/console/approvals/{wrong}?decision=approve")
            assert "nothing changed" in await page.get_by_role("alert").inner_text(), wrong
            assert await page.get_by_role("button", name="Confirm: approve").count() == 0
        await page.screenshot(path=tmp_path / "forged.png", full_page=True)
        forms: list[dict[str, str | float | bool]] = [
            {"decision": "approve"},
            {"decision": "approve", "csrf": ""},
            {"decision": "approve", "csrf": other_csrf},
        ]
        for form in forms:
            answer = await page.request.post(f"{base}/console/approvals/{approval}", form=form, max_redirects=0)
            assert answer.status == 403, form
        anonymous = await browser.new_context()
        answer = await anonymous.request.post(
            f"{base}/console/approvals/{approval}", form={"decision": "approve", "csrf": other_csrf}, max_redirects=0
        )
        assert answer.status == 403
        own_csrf = await page.locator("form.logout input[name=csrf]").get_attribute("value")
        assert own_csrf
        answer = await page.request.post(
            f"{base}/console/approvals/{forged}", form={"decision": "approve", "csrf": own_csrf}
        )
        assert answer.status == 404
        await settle(remediator)
        assert purges(calls) == 0
        await page.goto(f"{base}/console/approvals")
        assert await page.locator("article.approval").count() == 1  # still pending, untouched
        for context in (first, second, anonymous):
            await context.close()
    assert purges(calls) == 0
    assert not pages(calls, "approval_denied")


@asynccontextmanager
async def order_service() -> AsyncIterator[tuple[str, Calls]]:
    """A loopback stand-in of the order service: its queue status (what a diagnose step reads), its purge, and a
    pager endpoint; every request recorded."""
    calls: Calls = []
    status = {"queue": "orders", "messages": 48210, "consumers": 0, "oldest_message_age_seconds": 912}

    async def handler(request: web.Request) -> web.Response:
        calls.append((request.path, await request.json() if request.can_read_body else None))
        return web.json_response(status if request.path.endswith("/queues/orders") else {})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), calls
    finally:
        await server.close()


async def test_the_approvals_page_shows_the_evidence_gathered_before_the_step_that_waits(
    browser: Browser, tmp_path: Path
) -> None:
    async with order_service() as (hook, calls):
        rule = guarded(hook)
        diagnose = {
            "kind": "diagnose",
            "name": "queue-status",
            "probes": [{"kind": "http_get", "name": "orders-queue", "url": f"{hook}/platform/queues/orders"}],
        }
        rule["steps"] = [diagnose, *rule["steps"]]
        cfg = config(tmp_path, hook, rules=[rule], external_url="https://tradeops.example/")
        async with served(cfg) as (client, remediator, base):
            await pending(client, remediator)
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await login(context, base)
            await page.goto(f"{base}/console/approvals")
            card = await page.locator("article.approval").inner_text()
            for seen in ("orders-queue", "HTTP 200", '"messages": 48210', '"consumers": 0', "queue-status"):
                assert seen in card, seen
            await check_accessible(page)
            await page.screenshot(path=tmp_path / "approvals-evidence.png", full_page=True)
            publish(tmp_path / "approvals-evidence.png", "console-approvals.png")
            await context.close()
    assert purges(calls) == 0


async def pass_deadlines(remediator: Remediator) -> None:
    """Move every pending approval's deadline into the past, as if its time had run out (no sleeping)."""
    store = remediator.engine.store
    assert isinstance(store, SqliteStore)
    for (key,) in store._read("SELECT key FROM incident_records"):
        incident = await store.incident(key)
        assert incident is not None
        if incident.approval.get("state") == "pending":
            incident.approval_until = now() - dt.timedelta(seconds=1)
            incident.approval["until"] = incident.approval_until.isoformat()
            await store.save(incident)


async def test_an_approval_whose_deadline_passes_leaves_the_page_refuses_its_button_and_pages_the_expiry(
    browser: Browser, tmp_path: Path
) -> None:
    async with recorder() as (hook, calls), served(settings(tmp_path, hook)) as (client, remediator, base):
        await pending(client, remediator)
        link = approval_link(calls)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await login(context, base)
        row = page.locator("#incident-list tbody tr")
        assert "waiting for approval" in await row.first.inner_text()
        await page.locator("#f-state").select_option("waiting_approval")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_load_state()
        assert await page.locator("#incident-list tbody tr").count() == 1
        listing = await context.new_page()
        await listing.goto(f"{base}/console/incidents")
        await page.goto(f"{base}/console/approvals")
        assert await page.locator("article.approval").count() == 1
        # A browser without JavaScript keeps its copy of the page, and the Approve button on it, as it was.
        frozen = await browser.new_context(java_script_enabled=False)
        stale = await login(frozen, base)
        await stale.goto(f"{base}/console/approvals")
        assert await stale.locator("article.approval").count() == 1
        await pass_deadlines(remediator)
        for _ in range(200):
            if pages(calls, "approval_expired"):
                break
            await asyncio.sleep(0.025)
        await settle(remediator)
        assert len(pages(calls, "approval_expired")) == 1
        # With the script, the open approvals page drops the card by itself (it refreshes its list).
        await expect(page.locator("article.approval")).to_have_count(0, timeout=30_000)
        assert "Nothing waits for approval" in await page.locator("#approval-list").inner_text()
        await expect(listing.locator("#incident-list tbody tr").first).to_contain_text("escalated", timeout=30_000)
        await listing.close()
        async with stale.expect_response(lambda answer: answer.request.method == "POST") as posted:
            await stale.get_by_role("button", name="Approve").click()
        assert (await posted.value).status == 409
        await stale.wait_for_load_state()
        assert "deadline has passed: nothing changed" in await stale.get_by_role("status").inner_text()
        await stale.screenshot(path=tmp_path / "approve-after-expiry.png", full_page=True)
        await frozen.close()
        csrf = await page.locator("form.logout input[name=csrf]").get_attribute("value")
        assert csrf
        approval = link.split("/")[2].split("?")[0]
        for decision in ("approve", "deny", "approve"):  # a replay of either decision is refused the same way
            answer = await page.request.post(
                f"{base}/console/approvals/{approval}", form={"decision": decision, "csrf": csrf}, max_redirects=0
            )
            assert answer.status == 409, decision
        await page.goto(base + link)
        assert "deadline has passed" in await page.get_by_role("alert").inner_text()
        assert await page.get_by_role("button", name="Confirm: approve").count() == 0
        await page.goto(f"{base}/console/approvals")
        assert await page.locator("article.approval").count() == 0
        assert "Nothing waits for approval" in await page.locator("main").inner_text()
        await page.goto(f"{base}/console/incidents?state=waiting_approval")
        assert await page.locator("#incident-list tbody tr").count() == 0
        hostile = urllib.parse.quote("<script>window.__pwned=1</script>")
        await page.goto(f"{base}/console/incidents?state={hostile}")
        assert (
            "state must be one of open, acting, verifying, waiting, waiting_approval"
            in await page.get_by_role("alert").inner_text()
        )
        assert await page.evaluate("window.__pwned") is None
        await page.goto(f"{base}/console/incidents")
        assert "escalated" in await page.locator("#incident-list tbody tr").first.inner_text()
        seen = await timeline(page, base)
        assert "purge: nobody approved in time" in seen
        expiry = await page.locator("li.event-page_trigger", has_text="approval_expired").inner_text()
        assert "delivered" in expiry
        assert "1 delivery attempt" in expiry
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "timeline-expired.png", full_page=True)
        await context.close()
    assert purges(calls) == 0
    assert len(pages(calls, "approval_expired")) == 1
    assert not pages(calls, "approval_denied")
