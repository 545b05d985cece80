"""Outbox bodies (stable dedup keys, no secrets stored) and the SQLite records' lifecycle: a resolve cancels
the triggers it makes moot, a failed attempt retries, leases keep two senders apart."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from remediator.audit.sqlite import SqliteStore
from remediator.config import EscalationConfig
from remediator.escalation.channels import Escalation, channels, record_body, summary_body, with_secrets
from remediator.escalation.records import NewRecord, OutboxRecord

KEY = "abc@2026-11-22T03:00:00+00:00#rule"
CONFIG = EscalationConfig.model_validate(
    {
        "alertmanager": {"url": "http://am:9093/"},
        "webhooks": [
            {"url": "http://hook/a"},
            {"url": "http://hook/b"},
            {"url": "http://pd/", "shape": "pagerduty", "routing_key": "secret-key"},
            {"url": "http://slack/", "shape": "slack"},
        ],
    }
)
ESCALATION = Escalation(KEY, {"alertname": "Down", "severity": "critical"}, "action_failed", "it broke")


def test_channels_have_stable_unique_names() -> None:
    assert list(channels(CONFIG)) == [
        "alertmanager",
        "webhook:generic",
        "webhook:generic:2",
        "webhook:pagerduty",
        "webhook:slack",
    ]
    assert channels(CONFIG)["alertmanager"].url == "http://am:9093/api/v2/alerts"


def test_bodies_carry_a_stable_dedup_key_and_no_secret() -> None:
    found = channels(CONFIG)
    at = dt.datetime(2026, 11, 22, 3, 5, tzinfo=dt.UTC)
    (am,) = json.loads(record_body(found["alertmanager"], ESCALATION, at))
    assert am["labels"] == {
        "alertname": "RemediationEscalated",
        "original_alertname": "Down",
        "escalation_reason": "action_failed",
        "severity": "critical",
    }
    assert am["startsAt"] == at.isoformat()  # fixed at enqueue: every retry is the same alert
    stored = record_body(found["webhook:pagerduty"], ESCALATION, at)
    assert "secret-key" not in stored
    sent = json.loads(with_secrets(found["webhook:pagerduty"], stored))
    assert sent["routing_key"] == "secret-key"
    assert sent["dedup_key"] == KEY
    assert json.loads(record_body(found["webhook:generic"], ESCALATION, at))["incident"] == KEY


def test_a_summary_lists_every_incident_and_truncates_its_text() -> None:
    records = [
        OutboxRecord(i, f"k{i}", "webhook:slack", "trigger", "Down", "no_rule", "{}", 0.0, 0.0, 0, "pending")
        for i in range(1, 31)
    ]
    found = channels(CONFIG)
    generic = json.loads(summary_body(found["webhook:generic"], records))
    assert [entry["incident"] for entry in generic["incidents"]] == [f"k{i}" for i in range(1, 31)]
    slack = json.loads(summary_body(found["webhook:slack"], records))["text"]
    assert "k20" in slack
    assert "k21" not in slack
    assert "and 10 more" in slack
    pd = json.loads(summary_body(found["webhook:pagerduty"], records))
    assert pd["dedup_key"] == "tradeops-summary:1"
    assert "routing_key" not in pd


def new(kind: str, at: float = 100.0, channel: str = "webhook:generic") -> NewRecord:
    return NewRecord(KEY, channel, kind, "Down", "r", "{}", at)  # type: ignore[arg-type]


async def states(store: SqliteStore) -> list[tuple[str, str, int]]:
    return [tuple(row) for row in store._read("SELECT kind, state, attempts FROM outbox ORDER BY id")]


async def test_a_resolve_cancels_an_unsent_trigger_and_needs_no_page_itself(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db")
    outbox = store.outbox()
    await outbox.prepare()
    await outbox.add([new("trigger")])
    await outbox.add([new("resolve", 101.0)])
    assert await states(store) == [("trigger", "cancelled", 0), ("resolve", "superseded", 0)]
    assert await outbox.claim("webhook:generic", "r1", 200.0, 260.0, 10) == []
    await store.close()


async def test_a_delivered_trigger_gets_its_resolve_and_a_failed_one_retries(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db")
    outbox = store.outbox()
    await outbox.prepare()
    await outbox.add([new("trigger")])
    (claimed,) = await outbox.claim("webhook:generic", "r1", 100.0, 160.0, 10)
    assert await outbox.claim("webhook:generic", "r2", 100.0, 160.0, 10) == []  # leased by r1
    await outbox.failed({claimed.id: 105.0}, "r1", "HTTP 503")
    assert await outbox.claim("webhook:generic", "r1", 104.0, 164.0, 10) == []  # not yet due
    (again,) = await outbox.claim("webhook:generic", "r2", 105.0, 165.0, 10)
    assert again.attempts == 1
    await outbox.delivered([again.id], "r2", 106.0, coalesced=False)
    await outbox.add([new("resolve", 107.0)])
    assert await states(store) == [("trigger", "delivered", 2), ("resolve", "pending", 0)]
    stats = await outbox.stats()
    assert stats["webhook:generic"].pending == 1
    await store.close()


async def test_a_trigger_in_flight_when_its_resolve_comes_is_cancelled_if_its_attempt_fails(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db")
    outbox = store.outbox()
    await outbox.prepare()
    await outbox.add([new("trigger")])
    (claimed,) = await outbox.claim("webhook:generic", "r1", 100.0, 160.0, 10)
    await outbox.add([new("resolve", 101.0)])  # the trigger may reach the pager: the resolve must follow
    await outbox.failed({claimed.id: 110.0}, "r1", "TimeoutError")
    assert await states(store) == [("trigger", "cancelled", 1), ("resolve", "pending", 0)]
    await store.close()
