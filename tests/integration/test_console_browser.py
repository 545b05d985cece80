"""The console in a real browser (Debian's chromium, headless, driven by Playwright) against a remediator served
on loopback: login, incidents from a real webhook and their timeline, CSRF, hostile labels, accessibility basics;
each page's screenshot is saved in the test's tmp folder."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from common.web import free_port
from remediator.api.web import Remediator
from remediator.audit.reads import IncidentQuery
from remediator.audit.sqlite import SqliteStore
from tests.prereqs import missing
from tests.processes import alertmanager, process, wait_http
from tests.remediator_helpers import TOKEN, alert, config, payload, post, recorder, remediator_client, settle

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# Pages and what each must have: a title, landmarks, and a label for every control.
A11Y = """() => {
  const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
    .map(el => el.outerHTML);
  return {title: document.title, main: !!document.querySelector('main'), header: !!document.querySelector('header'),
          footer: !!document.querySelector('footer'), unlabelled};
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        missing("chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def login(context: BrowserContext, base: str, token: str = TOKEN) -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/console/login")
    await page.get_by_label("Webhook token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
    return page


async def until_escalated(remediator: Remediator, count: int) -> None:
    """Wait (bounded) until `count` incident records say escalated: the record is saved as the lock is released."""
    store = remediator.engine.store
    assert isinstance(store, SqliteStore)
    for _ in range(200):
        if len(await store.incident_page(IncidentQuery(limit=100, state="escalated"))) >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"fewer than {count} incidents escalated")


def publish(screenshot: Path, name: str) -> None:
    """With TRADEOPS_UPDATE_SCREENSHOTS=1, copy a screenshot to docs/img/ under this name (the README's images)."""
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(exist_ok=True)
        shutil.copy(screenshot, DOCS_IMG / name)


async def check_accessible(page: Page) -> None:
    found: dict[str, Any] = await page.evaluate(A11Y)
    assert found["title"], page.url
    assert [found["header"], found["main"], found["footer"]] == [True, True, True], (page.url, found)
    assert found["unlabelled"] == [], (page.url, found["unlabelled"])


async def test_wrong_token_is_refused_and_pages_without_a_session_go_to_the_login(
    browser: Browser, tmp_path: Path
) -> None:
    async with remediator_client(config(tmp_path, "http://127.0.0.1:1")) as (client, _):
        base = str(client.make_url("")).rstrip("/")
        context = await browser.new_context()
        page = await context.new_page()
        for path in ("/console/incidents", "/console/rules", "/console/explain", "/console/incidents/x%23y"):
            await page.goto(base + path)
            assert urllib.parse.urlsplit(page.url).path == "/console/login", path
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "login.png")
        refused = await login(context, base, "not-the-token")
        assert urllib.parse.urlsplit(refused.url).path == "/console/login"
        await refused.get_by_role("alert").wait_for()
        assert "not the remediator's webhook token" in await refused.get_by_role("alert").inner_text()
        assert not [c for c in await context.cookies() if c["name"] == "tradeops_session"]
        await context.close()


async def test_an_incident_from_a_real_webhook_is_listed_and_shows_its_timeline(
    browser: Browser, tmp_path: Path
) -> None:
    async with recorder() as (hook, _), remediator_client(config(tmp_path, hook)) as (client, remediator):
        base = str(client.make_url("")).rstrip("/")
        await post(client, payload(alert("BrokenThing"), alert("ApiLatencyHigh"), alert("Noise")))
        await settle(remediator)
        await until_escalated(remediator, 2)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await login(context, base)
        assert urllib.parse.urlsplit(page.url).path == "/console/incidents"
        [cookie] = [c for c in await context.cookies() if c["name"] == "tradeops_session"]
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
        assert cookie["expires"] > 0
        rows = page.locator("#incident-list tbody tr")
        assert await rows.count() == 2
        assert "escalated" in await rows.first.inner_text()
        assert "Noise" in await page.locator("ul.ignored").inner_text()
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "incidents.png", full_page=True)
        await page.locator("#f-rule").select_option("judgement")
        await page.get_by_role("button", name="Filter").click()
        await page.wait_for_load_state()
        assert await page.locator("#incident-list tbody tr").count() == 1
        await page.get_by_role("link", name="ApiLatencyHigh").click()
        await page.get_by_role("link", name="Incidents").click()
        await page.get_by_role("link", name="BrokenThing").click()
        await page.wait_for_load_state()
        timeline = await page.locator("ol.timeline").inner_text()
        for seen in (
            "received",
            "executed",
            "action",
            "failure",
            "escalated",
            "page to",
            "delivered",
            "1 delivery attempt",
        ):
            assert seen in timeline, seen
        assert await page.locator("ol.timeline time").count() >= 5
        assert "." in (await page.locator("ol.timeline time").first.inner_text())  # milliseconds
        assert await page.get_by_role("link", name="Alert expression in Prometheus").get_attribute("href") == (
            "http://prometheus/graph"
        )
        await check_accessible(page)
        await page.screenshot(path=tmp_path / "timeline.png", full_page=True)
        for path, name in (("/console/rules", "rules"), ("/console/explain", "explain")):
            await page.goto(base + path)
            await check_accessible(page)
            await page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
        await page.get_by_label("Alertmanager payload (JSON)").fill(
            json.dumps(payload(alert("CollectorFailed", collector="binance")))
        )
        await page.get_by_role("button", name="Explain").click()
        await page.wait_for_load_state()
        plans = await page.locator("table").inner_text()
        for seen in ("reset-collector", "executed", "collector:binance"):
            assert seen in plans
        await page.screenshot(path=tmp_path / "explain-plans.png", full_page=True)
        phone = await context.new_page()
        await phone.set_viewport_size({"width": 390, "height": 844})
        await phone.goto(f"{base}/console/incidents")
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        await phone.screenshot(path=tmp_path / "incidents-phone.png", full_page=True)
        publish(tmp_path / "incidents.png", "console-incidents.png")
        publish(tmp_path / "timeline.png", "console-timeline.png")
        await context.close()


async def test_a_post_without_a_valid_csrf_token_or_after_logout_is_refused_and_changes_nothing(
    browser: Browser, tmp_path: Path
) -> None:
    async with remediator_client(config(tmp_path, "http://127.0.0.1:1")) as (client, remediator):
        base = str(client.make_url("")).rstrip("/")
        first, second = await browser.new_context(), await browser.new_context()
        page = await login(first, base)
        other = await login(second, base)
        other_csrf = await other.locator("form.logout input[name=csrf]").get_attribute("value")
        own_csrf = await page.locator("form.logout input[name=csrf]").get_attribute("value")
        assert other_csrf
        assert own_csrf
        assert other_csrf != own_csrf
        body = json.dumps(payload(alert("BrokenThing")))
        forms: list[dict[str, str | float | bool]] = [
            {"payload": body},
            {"payload": body, "csrf": other_csrf},
            {"csrf": ""},
        ]
        for form in forms:
            for path in ("/console/explain", "/console/logout"):
                answer = await page.request.post(base + path, form=form, max_redirects=0)
                assert answer.status == 403, (path, form)
        await page.goto(f"{base}/console/rules")  # still logged in: the refused logout did nothing
        assert urllib.parse.urlsplit(page.url).path == "/console/rules"
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_load_state()
        assert urllib.parse.urlsplit(page.url).path == "/console/login"
        answer = await page.request.post(f"{base}/console/explain", form={"payload": body, "csrf": own_csrf})
        assert answer.status == 403
        await other.goto(f"{base}/console/rules")  # the other session is untouched
        assert urllib.parse.urlsplit(other.url).path == "/console/rules"
        assert await remediator.engine.store.recent(10) == []  # nothing was received, decided or run
        await first.close()
        await second.close()


async def test_hostile_labels_and_urls_render_as_text_and_never_run(browser: Browser, tmp_path: Path) -> None:
    hostile = alert(
        "Unmatched<script>window.__pwned=1</script>",
        evil='"><img src=x onerror="window.__pwned=2">',
        script="<script>window.__pwned=3</script>",
    )
    hostile["generatorURL"] = "javascript:window.__pwned=4"
    hostile["annotations"] = {"summary": '<a href="javascript:window.__pwned=5">click</a>'}
    async with recorder() as (hook, _), remediator_client(config(tmp_path, hook)) as (client, remediator):
        base = str(client.make_url("")).rstrip("/")
        document = payload(hostile)
        document["externalURL"] = "javascript:window.__pwned=6"
        await post(client, document)
        await settle(remediator)
        context = await browser.new_context()
        page = await login(context, base)
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        text = await page.locator("#incident-list").inner_text()
        assert "<script>window.__pwned=1</script>" in text
        await page.locator("#incident-list tbody a").first.click()
        await page.wait_for_load_state()
        main = await page.locator("main").inner_text()
        assert '"><img src=x onerror="window.__pwned=2">' in main
        assert "javascript:window.__pwned=4" in main  # shown as text, not a link
        assert await page.locator("main img").count() == 0
        assert await page.locator("main script").count() == 0
        hrefs = await page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")]
        assert await page.evaluate("window.__pwned") is None
        assert dialogs == []
        await page.screenshot(path=tmp_path / "hostile.png", full_page=True)
        await context.close()


@asynccontextmanager
async def remediator_process(tmp_path: Path) -> AsyncIterator[str]:
    """A real tradeops-remediator process on loopback (SQLite audit, an escalate-only rule); yield its URL."""
    settings = {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "escalation": {"webhooks": [{"url": "http://127.0.0.1:9/escalations", "shape": "generic"}]},
        "rules": [{"name": "judgement", "matchers": ['alertname="ApiLatencyHigh"'], "action": "escalate"}],
    }
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump(settings))
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "remediator.main",
        "--config.file",
        str(path),
        "--web.listen-address",
        f"127.0.0.1:{port}",
    ]
    async with process(argv, tmp_path / "remediator.log"):
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/-/healthy")
        yield url


async def test_an_alert_sent_by_a_real_alertmanager_to_a_real_remediator_shows_in_the_console(
    browser: Browser, tmp_path: Path
) -> None:
    async with (
        remediator_process(tmp_path) as base,
        alertmanager(tmp_path, f"{base}/webhook", TOKEN) as am_url,
        aiohttp.ClientSession() as http,
    ):
        labels = {"alertname": "ApiLatencyHigh", "priority": "P1", "service": "api"}
        sent = [
            {
                "labels": labels,
                "annotations": {"summary": "p99 over 2 s"},
                "generatorURL": "http://prometheus:9090/graph",
            }
        ]
        async with http.post(f"{am_url}/api/v2/alerts", json=sent) as answer:
            assert answer.status == 200
        headers = {"Authorization": f"Bearer {TOKEN}"}
        incidents: list[dict[str, Any]] = []
        for _ in range(200):  # Alertmanager's group_wait is 1 s
            async with http.get(f"{base}/api/v1/incidents", headers=headers) as answer:
                incidents = (await answer.json())["incidents"]
            if incidents and incidents[0]["state"] == "escalated":
                break
            await asyncio.sleep(0.05)
        assert [(i["alertname"], i["state"]) for i in incidents] == [("ApiLatencyHigh", "escalated")]
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await login(context, base)
        await page.get_by_role("link", name="ApiLatencyHigh").click()
        await page.wait_for_load_state()
        timeline = await page.locator("ol.timeline").inner_text()
        for seen in ("received", "escalation_only", "escalated", "page to webhook:generic"):
            assert seen in timeline, seen
        link = await page.get_by_role("link", name="Alertmanager").get_attribute("href")
        assert urllib.parse.urlsplit(link or "").port == urllib.parse.urlsplit(am_url).port  # its externalURL
        assert "p99 over 2 s" in await page.locator("main").inner_text()
        await page.screenshot(path=tmp_path / "timeline-from-alertmanager.png", full_page=True)
        await context.close()
