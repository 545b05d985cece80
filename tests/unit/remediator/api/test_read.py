"""The read API: incidents and the audit trail with filters and cursors, an incident's timeline and pages, its
auth, and the same store reads in SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from remediator.api.views import audit_filter, incident_filter, list_incidents, list_remediations
from remediator.audit.postgres import PostgresStore
from remediator.audit.reads import AuditQuery, IncidentQuery
from remediator.audit.sqlite import SqliteStore
from remediator.intake.payload import WebhookAlert
from remediator.state.base import AuditEntry
from remediator.state.incident import Incident
from tests.remediator_helpers import alert, auth, config, payload, post, recorder, remediator_client, settle

Client = TestClient[web.Request, web.Application]


async def get(client: Client, path: str, **query: str) -> tuple[int, Any]:
    response = await client.get(path, params=query, headers=auth())
    return response.status, await response.json()


async def test_read_api_refuses_requests_without_the_token(tmp_path: Path) -> None:
    async with remediator_client(config(tmp_path, "http://127.0.0.1:1")) as (client, _):
        for path in ("/api/v1/incidents", "/api/v1/incidents/x", "/api/v1/remediations"):
            assert (await client.get(path)).status == 401
            assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/api/v1/openapi.json")).status == 200


async def test_an_incident_from_a_webhook_is_listed_and_shows_its_decisions_action_and_page(tmp_path: Path) -> None:
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, remediator):
        assert (await post(client, payload(alert("BrokenThing"), alert("Noise"))))[0] == 200
        await settle(remediator)
        status, body = await get(client, "/api/v1/incidents")
        assert status == 200
        [found] = body["incidents"]
        assert found["rule"] == "broken-endpoint"
        assert found["state"] == "escalated"
        assert found["escalation_reason"] == "action_failed"
        quoted = urllib.parse.quote(found["id"], safe="")
        status, detail = await get(client, f"/api/v1/incidents/{quoted}")
        assert status == 200
        events = [(e["event"], e["decision"]) for e in detail["timeline"]]
        assert events[0] == ("received", None)
        assert ("decision", "executed") in events
        assert ("action", "failure") in events
        assert ("escalated", "action_failed") in events
        assert all(
            e["at"].endswith("Z") and len(e["at"]) == len("2026-11-22T03:00:00.000Z") for e in detail["timeline"]
        )
        [page] = detail["pages"]
        assert (page["kind"], page["state"], page["attempts"]) == ("trigger", "delivered", 1)
        assert detail["alert"]["generator_url"] == "http://prometheus/graph"
        assert detail["alert"]["alertmanager_url"] == "http://alertmanager"
        status, _ = await get(client, "/api/v1/incidents/nope%23rule")
        assert status == 404
        status, ignored = await get(client, "/api/v1/remediations", decision="ignored")
        assert [e["alertname"] for e in ignored["remediations"]] == ["Noise"]


async def test_incidents_page_through_a_cursor_without_gaps_or_repeats(tmp_path: Path) -> None:
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, remediator):
        alerts = [alert("ApiLatencyHigh", host=f"h{n}") for n in range(7)]
        await post(client, payload(*alerts))
        await settle(remediator)
        seen: list[str] = []
        cursor = ""
        for _ in range(10):
            status, body = await get(client, "/api/v1/incidents", limit="3", cursor=cursor)
            assert status == 200
            seen += [i["id"] for i in body["incidents"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 7 == len(set(seen))
        status, body = await get(client, "/api/v1/remediations", limit="2", event="decision")
        assert len(body["remediations"]) == 2
        status, more = await get(
            client, "/api/v1/remediations", limit="10", event="decision", cursor=body["next_cursor"]
        )
        assert len(more["remediations"]) == 5
        assert more["next_cursor"] is None


async def test_bad_query_parameters_are_400(tmp_path: Path) -> None:
    async with remediator_client(config(tmp_path, "http://127.0.0.1:1")) as (client, _):
        for path, query in (
            ("/api/v1/incidents", {"state": "sleeping"}),
            ("/api/v1/incidents", {"limit": "0"}),
            ("/api/v1/incidents", {"since": "yesterday"}),
            ("/api/v1/incidents", {"cursor": "!!!"}),
            ("/api/v1/remediations", {"cursor": "eyJpZCI6IngifQ"}),
            ("/api/v1/remediations", {"limit": "x"}),
            ("/api/v1/remediations", {"alertname": "a\x00b"}),
        ):
            status, body = await get(client, path, **query)
            assert status == 400, (path, query)
            assert body["error"]


def _incident(n: int, *, closed: bool = False, escalated: bool = False, attempts: int = 0) -> Incident:
    labels = {"alertname": f"A{n % 2}", "priority": "P0" if n % 3 == 0 else "P2"}
    return Incident(
        f"{n:04x}@2026-11-22T03:00:00+00:00#rule{n % 2}",
        labels["alertname"],
        labels,
        f"rule{n % 2}",
        "closed" if closed else "open",
        attempts,
        None,
        None,
        escalated,
        None,
    )


@asynccontextmanager
async def opened(kind: str, where: str) -> AsyncIterator[Any]:
    store: Any = SqliteStore(Path(where) / "audit.sqlite3") if kind == "sqlite" else PostgresStore(where, "r1", 2, 5.0)
    await store.open()
    await store.outbox().prepare()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path)
    return "postgres", request.getfixturevalue("postgres_dsn")


async def test_both_stores_filter_and_order_incidents_open_first(where: tuple[str, str]) -> None:
    async with opened(*where) as store:
        await _incidents_open_first(store)


async def _incidents_open_first(store: Any) -> None:
    for n in range(12):
        await store.save(_incident(n, closed=n % 4 == 0, escalated=n % 4 == 1, attempts=1 if n % 4 == 2 else 0))
    rows = await store.incident_page(IncidentQuery(limit=100))
    states = [row.incident.state for row in rows]
    assert states == sorted(states, key=lambda s: s == "closed")
    assert len(rows) == 12
    assert {r.incident.key[:4] for r in await store.incident_page(IncidentQuery(limit=100, state="resolved"))} == {
        "0000",
        "0004",
        "0008",
    }
    assert len(await store.incident_page(IncidentQuery(limit=100, state="escalated"))) == 3
    assert len(await store.incident_page(IncidentQuery(limit=100, state="acting"))) == 3
    assert len(await store.incident_page(IncidentQuery(limit=100, state="waiting"))) == 3
    assert len(await store.incident_page(IncidentQuery(limit=100, alertname="A1", priority="P0"))) == 2
    assert len(await store.incident_page(IncidentQuery(limit=100, rule="rule0"))) == 6
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert await store.incident_page(IncidentQuery(limit=100, since=future)) == []
    assert len(await store.incident_page(IncidentQuery(limit=100, until=future))) == 12
    cursor: str | None = ""
    seen: list[str] = []
    for _ in range(10):
        items, cursor = await list_incidents(
            store, config(Path("/tmp"), "http://x"), incident_filter({"limit": "5", "cursor": cursor or ""})
        )
        seen += [i["id"] for i in items]
        if cursor is None:
            break
    assert seen == [row.incident.key for row in rows]


async def test_both_stores_filter_audit_entries_and_page_by_id(where: tuple[str, str]) -> None:
    async with opened(*where) as store:
        await _audit_pages(store)


async def _audit_pages(store: Any) -> None:
    at = dt.datetime(2026, 11, 22, 3, 0, 1, 123456, tzinfo=dt.UTC)
    entries = []
    for n in range(6):
        hook = WebhookAlert("firing", {"alertname": f"A{n % 2}", "priority": "P1"}, at, f"{n:04x}")
        entries.append(
            AuditEntry(at + dt.timedelta(seconds=n), hook, "decision", "r", "ignored" if n % 3 == 0 else "executed", "")
        )
    await store.record(entries)
    page, cursor = await list_remediations(store, audit_filter({"limit": "4"}))
    assert len(page) == 4
    rest, end = await list_remediations(store, audit_filter({"limit": "4", "cursor": cursor or ""}))
    assert len(rest) == 2
    assert end is None
    assert [e["at"] for e in rest] == ["2026-11-22T03:00:02.123Z", "2026-11-22T03:00:01.123Z"]
    assert len(await store.audit_page(AuditQuery(limit=10, decision="ignored"))) == 2
    assert len(await store.audit_page(AuditQuery(limit=10, alertname="A1", priority="P1"))) == 3
    assert len(await store.audit_page(AuditQuery(limit=10, incident=entries[0].alert.incident_key))) == 1
    assert len(await store.audit_page(AuditQuery(limit=10, since=at + dt.timedelta(seconds=4)))) == 2
    newest = (await store.audit_page(AuditQuery(limit=1)))[0]["id"]
    bounded = await store.audit_page(AuditQuery(limit=10, above_id=newest - 2))
    assert [e["id"] for e in bounded] == [newest, newest - 1]
