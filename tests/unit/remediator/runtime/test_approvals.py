"""A step that can hurt a trading path waits for a human: approved it runs, denied or expired it escalates, and a
forged, replayed or late approval changes nothing."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from remediator.config import ActStep, RuleConfig
from remediator.runtime.playbook import approval_id, approval_still_for, parse_approval_id, step_digest
from remediator.state.incident import Incident
from tests.remediator_helpers import alert, auth, config, payload, post, recorder, remediator_client, settle

Calls = list[tuple[str, Any]]


def guarded(base: str, within_minutes: float = 30) -> dict[str, Any]:
    return {
        "name": "purge-orders",
        "matchers": ['alertname="QueueDepthCritical"'],
        "steps": [
            {
                "name": "purge",
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base}/platform/purge"},
                "approval": {"within_minutes": within_minutes},
            }
        ],
        "cooldown_minutes": 0,
        "rate": {"per_minute": 600, "burst": 100},
        "retries": 0,
    }


def pages(calls: Calls, reason: str) -> list[dict[str, Any]]:
    return [body for path, body in calls if path == "/escalations" and body.get("reason") == reason]


def approval_of(calls: Calls) -> str:
    (page,) = pages(calls, "approval_needed")
    found = re.search(r"/approvals/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)\?decision=approve", page["detail"])
    assert found is not None, page["detail"]
    return found.group(1)


async def decide(client: TestClient[Any, Any], approval: str, decision: str, user: str = "alice") -> tuple[int, Any]:
    response = await client.post(
        f"/api/v1/approvals/{approval}", json={"decision": decision, "user": user}, headers=auth()
    )
    return response.status, await response.json()


async def test_an_approved_step_runs_and_records_who_approved_it(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[guarded(base)], external_url="https://tradeops.example/")
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            assert not any(path == "/platform/purge" for path, _ in calls)  # nothing runs before a human says so
            status, body = await decide(client, approval_of(calls), "approve")
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    assert (status, body["result"]) == (200, "approved")
    assert [path for path, _ in calls if path == "/platform/purge"] == ["/platform/purge"]
    approvals = [e for e in entries if e["event"] == "approval"]
    assert [(e["decision"], e["detail"]) for e in approvals] == [("approved", "purge: by token:alice")]


async def test_a_denied_step_never_runs_and_escalates_with_the_reason(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[guarded(base)], external_url="https://tradeops.example/")
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            status, body = await decide(client, approval_of(calls), "deny")
            await settle(remediator)
    assert (status, body["result"]) == (200, "denied")
    assert not any(path == "/platform/purge" for path, _ in calls)
    assert len(pages(calls, "approval_denied")) == 1


async def test_a_replayed_forged_or_late_approval_changes_nothing(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[guarded(base)], external_url="https://tradeops.example/")
        async with remediator_client(cfg) as (client, remediator):
            firing = alert(name="QueueDepthCritical", queue="orders")
            await post(client, payload(firing))
            await settle(remediator)
            approval = approval_of(calls)
            key, _, nonce = approval.partition(".")
            forged = await decide(client, f"{key}.{'A' * len(nonce)}", "approve")
            garbage = await decide(client, "not-an-id", "approve")
            await post(client, payload({**firing, "status": "resolved"}))
            await settle(remediator)
            late = await decide(client, approval, "approve")
            replay = await decide(client, approval, "approve")
            unauthenticated = await client.post(f"/api/v1/approvals/{approval}", json={"decision": "approve"})
            await settle(remediator)
    assert forged[0] == 404
    assert garbage[0] == 404
    assert (late[0], late[1]["result"]) == (409, "not_pending")  # the resolve cancelled the pending approval
    assert replay[0] == 409
    assert unauthenticated.status == 401
    assert not any(path == "/platform/purge" for path, _ in calls)


async def test_an_approval_nobody_gives_in_time_escalates_and_the_step_never_runs(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[guarded(base, within_minutes=0.005)])  # 0.3 s
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            for _ in range(100):
                if pages(calls, "approval_expired"):
                    break
                await asyncio.sleep(0.05)
            await settle(remediator)
            (page,) = pages(calls, "approval_needed")
            approval = re.search(r"approval id (\S+)", page["detail"])
            assert approval is not None
            late = await decide(client, approval.group(1), "approve")
    assert len(pages(calls, "approval_expired")) == 1
    assert late[0] == 409
    assert not any(path == "/platform/purge" for path, _ in calls)


HOSTILE_IDS = [
    "é.abc",  # not base64: a ValueError that was a 500
    "YWJj.é",  # a nonce token_urlsafe never makes
    "YWJj.\udcff",  # a lone surrogate (undecodable bytes in the path)
    "AA.\x00",
    "AA.x",  # decodes to a NUL key
    "YWJj.",
    ".YWJj",
    "YWJj.a.b",
    "x" * 3000,
    "YWJj." + "a" * 2048,
]


def test_a_hostile_approval_id_is_no_approval_id() -> None:
    for hostile in HOSTILE_IDS:
        assert parse_approval_id(hostile) is None, hostile
    assert parse_approval_id(approval_id("f@2026-11-22T03:00:00+00:00#r", "n0nce_-")) == (
        "f@2026-11-22T03:00:00+00:00#r",
        "n0nce_-",
    )


def test_an_approval_is_for_the_step_as_it_was_asked_not_for_a_changed_one() -> None:
    asked = RuleConfig.model_validate(guarded("http://platform"))
    changed_url = RuleConfig.model_validate(
        {**guarded("http://platform"), "steps": [{**guarded("http://platform")["steps"][0], "params": {"url": "x"}}]}
    )
    renamed = RuleConfig.model_validate(
        {**guarded("http://platform"), "steps": [{**guarded("http://platform")["steps"][0], "name": "halt"}]}
    )
    unguarded = RuleConfig.model_validate(
        {**guarded("http://platform"), "steps": [{**guarded("http://platform")["steps"][0], "approval": None}]}
    )
    cited = RuleConfig.model_validate(
        {
            **guarded("http://platform"),
            "steps": [
                {**guarded("http://platform")["steps"][0], "source": "seed 000", "approval": {"within_minutes": 5}}
            ],
        }
    )
    step = asked.playbook[0]
    assert isinstance(step, ActStep)
    incident = Incident("k", "QueueDepthCritical", {}, asked.name, "open", 1, None, None, False, None)
    incident.approval = {"nonce": "n", "step": "0", "name": "purge", "action": "http_request"}
    incident.approval["digest"] = step_digest(step)
    assert approval_still_for(incident, asked)
    assert approval_still_for(incident, cited)  # a new deadline or citation is the same step
    assert not approval_still_for(incident, changed_url)
    assert not approval_still_for(incident, renamed)
    assert not approval_still_for(incident, unguarded)
    assert not approval_still_for(incident, None)
    incident.approval["step"] = "3"
    assert not approval_still_for(incident, asked)
    del incident.approval["digest"]  # asked before digests were recorded: name and action decide
    incident.approval["step"] = "0"
    assert approval_still_for(incident, changed_url)
    assert not approval_still_for(incident, renamed)


async def test_every_approval_page_carries_the_evidence_gathered_before_the_step(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        rule = guarded(base)
        diagnose = {
            "kind": "diagnose",
            "name": "look",
            "timeout_seconds": 5,
            "probes": [{"kind": "http_get", "name": "queue-status", "url": f"{base}/platform/queue-status"}],
        }
        rule["steps"] = [diagnose, *rule["steps"]]
        cfg = config(tmp_path, base, rules=[rule], external_url="https://tradeops.example/")
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            (asked,) = pages(calls, "approval_needed")
            status, _ = await decide(client, approval_of(calls), "deny")
            await settle(remediator)
    assert status == 200
    (denied,) = pages(calls, "approval_denied")
    for page in (asked, denied):
        assert "queue-status: GET " in page["detail"], page["detail"]  # what the on-call engineer decides on
        assert "/platform/queue-status -> HTTP 200" in page["detail"]


async def test_an_approved_first_step_spends_the_hourly_budget_once_not_twice(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        limits = {"actions_per_hour": 1, "concurrency": 2, "queue_size": 100}
        cfg = config(tmp_path, base, rules=[guarded(base)], external_url="https://tradeops.example/", limits=limits)
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="QueueDepthCritical", queue="orders")))
            await settle(remediator)
            status, body = await decide(client, approval_of(calls), "approve")
            await settle(remediator)
            left = await remediator.engine.state.budget_remaining(1)
    assert (status, body["result"]) == (200, "approved")
    assert [path for path, _ in calls if path == "/platform/purge"] == ["/platform/purge"]  # the one action of the hour
    assert left == 0
