"""The states computed from an incident's record: waiting_approval (a step waits for a human) and verifying (a
step's verification watches it) are shown in GET /api/v1/incidents and are filters of their own (acting, waiting
and escalated leave them out, open keeps them); once the deadline passes, or the approval is decided, the
incident is shown in its store state again. The OpenAPI document lists them."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from pathlib import Path

from remediator.api.openapi import document
from remediator.api.views import SHOWN_STATES, awaits_approval, shown_state
from remediator.audit.reads import INCIDENT_STATES
from remediator.audit.sqlite import SqliteStore
from remediator.state.incident import Incident, now
from tests.remediator_helpers import alert, config, payload, post, recorder, remediator_client, settle
from tests.unit.remediator.api.test_read import get
from tests.unit.remediator.runtime.test_approvals import approval_of, decide, guarded


def incident(**fields: object) -> Incident:
    base = Incident("k#r", "A", {}, "r", "open", 0, None, None, False, None)
    for name, value in fields.items():
        setattr(base, name, value)
    return base


def test_a_pending_approval_before_its_deadline_is_waiting_approval_and_nothing_else_is() -> None:
    later = now() + dt.timedelta(minutes=5)
    assert shown_state(incident(approval={"state": "pending"}, approval_until=later)) == "waiting_approval"
    assert shown_state(incident(approval={"state": "pending"}, approval_until=None)) == "waiting_approval"
    assert shown_state(incident(approval={"state": "pending"}, escalated=True)) == "waiting_approval"
    past = now() - dt.timedelta(seconds=1)
    assert not awaits_approval(incident(approval={"state": "pending"}, approval_until=past))
    assert shown_state(incident(approval={"state": "approved"}, attempts=1)) == "acting"
    assert shown_state(incident(approval={"state": "expired"}, escalated=True)) == "escalated"
    assert shown_state(incident(approval={"state": "pending"}, state="closed")) == "resolved"
    assert shown_state(incident(attempts=1, verify_until=later)) == "verifying"
    assert shown_state(incident(attempts=1, verify_until=later, escalated=True)) == "verifying"
    assert shown_state(incident(approval={"state": "pending"}, verify_until=later)) == "waiting_approval"
    assert shown_state(incident(verify_until=later, state="closed")) == "resolved"
    assert set(INCIDENT_STATES) < set(SHOWN_STATES)


def test_the_openapi_document_lists_waiting_approval_for_the_filter_and_the_incidents_state() -> None:
    spec = document()
    [state] = [p for p in spec["paths"]["/api/v1/incidents"]["get"]["parameters"] if p["name"] == "state"]
    assert "waiting_approval" in state["schema"]["enum"]
    assert "waiting_approval" in spec["components"]["schemas"]["Incident"]["properties"]["state"]["enum"]


async def test_the_api_lists_and_filters_incidents_waiting_for_approval(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        rules = [guarded(base), *config(tmp_path, base).rules]
        cfg = config(tmp_path, base, rules=rules, external_url="https://tradeops.example/")
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders"), alert("ApiLatencyHigh")))
            await settle(remediator)
            _, everything = await get(client, "/api/v1/incidents")
            states = {i["alertname"]: i["state"] for i in everything["incidents"]}
            assert states == {"QueueDepthCritical": "waiting_approval", "ApiLatencyHigh": "escalated"}
            for wanted, names in (
                ("waiting_approval", ["QueueDepthCritical"]),
                ("open", ["ApiLatencyHigh", "QueueDepthCritical"]),
                ("waiting", []),
                ("acting", []),
                ("escalated", ["ApiLatencyHigh"]),
                ("resolved", []),
            ):
                status, body = await get(client, "/api/v1/incidents", state=wanted)
                assert status == 200
                assert sorted(i["alertname"] for i in body["incidents"]) == names, wanted
            status, body = await get(client, "/api/v1/incidents", state="waiting_approval", target="purge-orders")
            assert [i["alertname"] for i in body["incidents"]] == ["QueueDepthCritical"]
            status, body = await get(client, "/api/v1/incidents", state="waiting-approval")
            assert status == 400
            assert "waiting_approval" in body["error"]
            [pending] = [i for i in everything["incidents"] if i["state"] == "waiting_approval"]
            _, detail = await get(client, f"/api/v1/incidents/{urllib.parse.quote(pending['id'], safe='')}")
            assert detail["incident"]["state"] == "waiting_approval"
            assert (await decide(client, approval_of(calls), "deny"))[0] == 200
            await settle(remediator)
            _, body = await get(client, "/api/v1/incidents", state="waiting_approval")
            assert body["incidents"] == []


async def test_a_waiting_approval_page_is_short_and_its_cursor_goes_on_past_other_incidents(tmp_path: Path) -> None:
    async with recorder() as (base, _):
        cfg = config(tmp_path, base, rules=[guarded(base), *config(tmp_path, base).rules])
        async with remediator_client(cfg) as (client, remediator):
            alerts = [alert(name="QueueDepthCritical", queue=f"q{n}") for n in range(3)]
            await post(client, payload(*alerts, *(alert("ApiLatencyHigh", host=f"h{n}") for n in range(4))))
            await settle(remediator)
            seen: list[str] = []
            cursor = ""
            for _ in range(10):
                query = {"state": "waiting_approval", "limit": "2", **({"cursor": cursor} if cursor else {})}
                status, body = await get(client, "/api/v1/incidents", **query)
                assert status == 200
                seen += [i["labels"]["queue"] for i in body["incidents"]]
                cursor = body["next_cursor"] or ""
                if not cursor:
                    break
            assert sorted(seen) == ["q0", "q1", "q2"]
            store = remediator.engine.store
            assert isinstance(store, SqliteStore)
            for row in store._read("SELECT key FROM incident_records"):
                found = await store.incident(row[0])
                assert found is not None
                if found.approval.get("state") == "pending":
                    found.approval_until = now() - dt.timedelta(seconds=1)  # its deadline passed, not yet expired
                    await store.save(found)
            _, body = await get(client, "/api/v1/incidents", state="waiting_approval")
            assert body["incidents"] == []


async def test_an_approval_posted_after_its_expiry_answers_expired_with_a_reason_and_runs_nothing(
    tmp_path: Path,
) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[guarded(base, within_minutes=0.005)])  # 0.3 s
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            for _ in range(100):
                if any(body and body.get("reason") == "approval_expired" for _, body in calls):
                    break
                await asyncio.sleep(0.05)
            [page] = [body for path, body in calls if path == "/escalations" and body["reason"] == "approval_needed"]
            approval = re.search(r"approval id (\S+)", page["detail"])
            assert approval is not None
            for decision in ("approve", "deny"):
                status, body = await decide(client, approval.group(1), decision)
                assert (status, body["result"]) == (409, "expired"), decision
                assert "deadline has passed" in body["error"]
            _, listed = await get(client, "/api/v1/incidents")
            assert [(i["state"], i["escalation_reason"]) for i in listed["incidents"]] == [
                ("escalated", "approval_expired")
            ]
    assert not any(path == "/platform/purge" for path, _ in calls)


async def test_each_state_filter_lists_exactly_the_incidents_shown_in_that_state(tmp_path: Path) -> None:
    later = now() + dt.timedelta(minutes=5)
    records = {
        "waiting": incident(),
        "acting": incident(attempts=1),
        "verifying": incident(attempts=1, verify_until=later),
        "verifying-escalated": incident(attempts=1, verify_until=later, escalated=True),
        "waiting_approval": incident(attempts=1, approval={"state": "pending"}, approval_until=later),
        "escalated": incident(attempts=1, escalated=True),
        "resolved": incident(attempts=1, state="closed"),
    }
    async with remediator_client(config(tmp_path, "http://127.0.0.1:1")) as (client, remediator):
        store = remediator.engine.store
        assert isinstance(store, SqliteStore)
        for name, record in records.items():
            record.key = f"{name}@2026-11-22T03:00:00+00:00#r"
            record.alertname = name
            await store.save(record)
        expected = {
            "open": sorted(n for n in records if n != "resolved"),
            "acting": ["acting"],
            "verifying": ["verifying", "verifying-escalated"],
            "waiting": ["waiting"],
            "waiting_approval": ["waiting_approval"],
            "escalated": ["escalated"],
            "resolved": ["resolved"],
        }
        assert set(expected) == set(SHOWN_STATES)
        for state, names in expected.items():
            status, body = await get(client, "/api/v1/incidents", state=state)
            assert status == 200
            assert sorted(i["alertname"] for i in body["incidents"]) == names, state
            assert {shown for i in body["incidents"] if (shown := i["state"]) != state} <= (
                {"acting", "verifying", "waiting", "waiting_approval", "escalated"} if state == "open" else set()
            )
