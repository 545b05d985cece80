"""What each escalation channel is sent: channel names, the Alertmanager alert's stable label set, the webhook
shapes, storm summaries, and the PagerDuty routing key added only at send time (never stored)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from remediator.config import EscalationConfig
from remediator.escalation.channels import (
    SUMMARY_LISTED,
    Channel,
    Escalation,
    alertmanager_alert,
    channels,
    record_body,
    summary_body,
    webhook_body,
    with_secrets,
)
from remediator.escalation.records import Kind, OutboxRecord

START = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
LABELS = {"alertname": "ServiceDown", "service": "api", "severity": "critical"}
KEY = "pd-routing-key-0123456789"


def escalation(
    resolved: bool = False, labels: dict[str, str] | None = None, detail: str = "restart failed"
) -> Escalation:
    return Escalation("ab12@2024", LABELS if labels is None else labels, "max_attempts", detail, resolved)


def config(**fields: Any) -> EscalationConfig:
    return EscalationConfig.model_validate(fields)


def record(n: int, kind: Kind = "trigger", body: str = "{}") -> OutboxRecord:
    return OutboxRecord(n, f"inc{n}", "c", kind, f"Alert{n}", "no_rule", body, 0.0, 0.0, 0, "pending")


def pagerduty(tmp_path: Path | None = None) -> Channel:
    if tmp_path is None:
        webhook = {"url": "https://events.pagerduty.com/v2/enqueue", "shape": "pagerduty", "routing_key": KEY}
    else:
        webhook = {
            "url": "https://events.pagerduty.com/v2/enqueue",
            "shape": "pagerduty",
            "routing_key_file": str(tmp_path),
        }
    return channels(config(webhooks=[webhook]))["webhook:pagerduty"]


# --- channels ---------------------------------------------------------------------------------------------


def test_no_channel_is_configured_by_default() -> None:
    assert channels(config()) == {}


def test_channels_are_named_by_kind_and_numbered_from_the_second_webhook_of_a_shape() -> None:
    found = channels(
        config(
            alertmanager={"url": "http://am:9093/", "alert_lifetime_minutes": 30},
            webhooks=[
                {"url": "http://a.example/hook", "shape": "slack"},
                {"url": "http://b.example/hook"},
                {"url": "http://c.example/hook", "shape": "slack"},
                {"url": "http://d.example/hook", "shape": "slack"},
            ],
        )
    )
    assert list(found) == ["alertmanager", "webhook:slack", "webhook:generic", "webhook:slack:2", "webhook:slack:3"]
    assert [channel.url for channel in found.values()][1:] == [
        "http://a.example/hook",
        "http://b.example/hook",
        "http://c.example/hook",
        "http://d.example/hook",
    ]
    assert found["webhook:slack:3"].shape == "slack"


def test_the_alertmanager_channel_posts_to_api_v2_with_its_alert_lifetime() -> None:
    for url in ("http://am:9093", "http://am:9093/"):
        channel = channels(config(alertmanager={"url": url, "alert_lifetime_minutes": 30}))["alertmanager"]
        assert channel.url == "http://am:9093/api/v2/alerts"
        assert channel.alert_lifetime == dt.timedelta(minutes=30)
        assert channel.webhook is None


# --- the Alertmanager alert ---------------------------------------------------------------------------------


def test_the_alertmanager_alert_carries_the_original_labels_under_its_own_name() -> None:
    alert = alertmanager_alert(escalation(), dt.timedelta(hours=1), START)
    assert alert["labels"] == {
        "alertname": "RemediationEscalated",
        "original_alertname": "ServiceDown",
        "escalation_reason": "max_attempts",
        "service": "api",
        "severity": "critical",
    }
    assert alert["annotations"]["summary"] == "tradeops could not remediate ServiceDown: max_attempts"
    assert alert["annotations"]["incident"] == "ab12@2024"
    assert (alert["startsAt"], alert["endsAt"]) == (START.isoformat(), (START + dt.timedelta(hours=1)).isoformat())


def test_labels_cannot_forge_the_escalation_labels() -> None:
    hostile = LABELS | {"original_alertname": "Forged", "escalation_reason": "ignored"}
    labels = alertmanager_alert(escalation(labels=hostile), dt.timedelta(hours=1), START)["labels"]
    assert (labels["alertname"], labels["original_alertname"], labels["escalation_reason"]) == (
        "RemediationEscalated",
        "ServiceDown",
        "max_attempts",
    )


def test_an_alert_without_alertname_escalates_with_an_empty_original_name() -> None:
    labels = alertmanager_alert(escalation(labels={"service": "api"}), dt.timedelta(hours=1), START)["labels"]
    assert labels["original_alertname"] == ""
    assert labels["alertname"] == "RemediationEscalated"


def test_a_resolve_ends_the_alert_at_its_start_and_keeps_the_same_label_set() -> None:
    firing = alertmanager_alert(escalation(), dt.timedelta(hours=1), START)
    resolved = alertmanager_alert(escalation(resolved=True), dt.timedelta(hours=1), START)
    assert resolved["endsAt"] == START.isoformat()
    assert resolved["labels"] == firing["labels"]


def test_the_alertmanager_description_carries_the_evidence_and_is_bounded() -> None:
    evidence = "diagnosed: " + "log line\n" * 400  # about 4,000 characters of a container log tail
    alert = alertmanager_alert(escalation(detail=evidence), dt.timedelta(hours=1), START)
    assert alert["annotations"]["description"] == evidence
    huge = alertmanager_alert(escalation(detail="x" * 50_000), dt.timedelta(hours=1), START)
    assert huge["annotations"]["description"] == "x" * 8000


# --- webhook shapes ----------------------------------------------------------------------------------------


def test_the_generic_webhook_body_has_the_whole_escalation() -> None:
    assert webhook_body("generic", escalation()) == {
        "incident": "ab12@2024",
        "reason": "max_attempts",
        "detail": "restart failed",
        "labels": LABELS,
        "resolved": False,
    }


def test_the_slack_text_is_bounded_and_marks_a_resolve() -> None:
    firing = webhook_body("slack", escalation(detail="y" * 5000))["text"]
    assert firing.startswith("tradeops escalation: ServiceDown (max_attempts) — ")
    assert firing.endswith("y" * 2000)
    assert len(firing) < 2100
    assert webhook_body("slack", escalation(resolved=True))["text"].startswith("RESOLVED: tradeops escalation:")


def test_pagerduty_triggers_and_resolves_under_one_dedup_key_per_incident() -> None:
    trigger = webhook_body("pagerduty", escalation())
    resolve = webhook_body("pagerduty", escalation(resolved=True))
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == "ab12@2024"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"] == {**LABELS, "tradeops_detail": "restart failed"}
    assert "routing_key" not in trigger


def test_pagerduty_severity_is_warning_unless_the_alert_is_critical() -> None:
    for severity in ("warning", "info", "CRITICAL", ""):
        body = webhook_body("pagerduty", escalation(labels=LABELS | {"severity": severity}))
        assert body["payload"]["severity"] == "warning"


def test_the_pagerduty_summary_is_bounded_to_its_limit() -> None:
    body = webhook_body("pagerduty", escalation(labels={"alertname": "A" * 2000}))
    assert len(body["payload"]["summary"]) == 1024


def test_a_record_keeps_the_channels_body_as_json() -> None:
    am = Channel("alertmanager", "http://am/api/v2/alerts", "alertmanager", alert_lifetime=dt.timedelta(minutes=5))
    assert json.loads(record_body(am, escalation(), START)) == [
        alertmanager_alert(escalation(), am.alert_lifetime, START)
    ]
    slack = Channel("webhook:slack", "http://s", "slack")
    assert json.loads(record_body(slack, escalation(), START)) == webhook_body("slack", escalation())


# --- the routing key --------------------------------------------------------------------------------------------


def test_the_routing_key_is_never_stored_and_is_added_when_sending() -> None:
    channel = pagerduty()
    stored = record_body(channel, escalation(), START)
    assert KEY not in stored
    sent = json.loads(with_secrets(channel, stored))
    assert sent["routing_key"] == KEY
    assert sent["dedup_key"] == "ab12@2024"


def test_a_routing_key_file_is_read_at_each_send_so_a_rotated_key_is_used(tmp_path: Path) -> None:
    key_file = tmp_path / "routing_key"
    key_file.write_text("first-key\n")
    channel = pagerduty(key_file)
    stored = record_body(channel, escalation(), START)
    assert json.loads(with_secrets(channel, stored))["routing_key"] == "first-key"
    key_file.write_text("second-key\n")
    assert json.loads(with_secrets(channel, stored))["routing_key"] == "second-key"


def test_other_channels_send_the_stored_body_unchanged() -> None:
    slack = Channel("webhook:slack", "http://s", "slack")
    assert with_secrets(slack, '{"text": "é"}') == '{"text": "é"}'.encode()


# --- storm summaries ------------------------------------------------------------------------------------------


def test_an_alertmanager_summary_sends_every_records_alerts_in_one_call() -> None:
    am = Channel("alertmanager", "http://am/api/v2/alerts", "alertmanager")
    records = [record(1, body='[{"labels": {"a": "1"}}]'), record(2, body='[{"labels": {"a": "2"}}]')]
    assert json.loads(summary_body(am, records)) == [{"labels": {"a": "1"}}, {"labels": {"a": "2"}}]


def test_a_generic_summary_lists_every_record_machine_readable() -> None:
    generic = Channel("webhook:generic", "http://g", "generic")
    records = [record(1), record(2, "resolve")]
    body = json.loads(summary_body(generic, records))
    assert body["summary"] is True
    assert body["count"] == 2
    assert body["incidents"] == [
        {"incident": "inc1", "alertname": "Alert1", "reason": "no_rule", "kind": "trigger"},
        {"incident": "inc2", "alertname": "Alert2", "reason": "no_rule", "kind": "resolve"},
    ]
    assert (
        body["text"] == "tradeops: 1 escalations over the page rate, coalesced\nAlert1 (no_rule) inc1\nresolved: 1 inc2"
    )


def test_a_summary_text_names_the_first_incidents_and_counts_the_rest() -> None:
    slack = Channel("webhook:slack", "http://s", "slack")
    opened = [record(n) for n in range(SUMMARY_LISTED + 5)]
    closed = [record(100 + n, "resolve") for n in range(SUMMARY_LISTED + 3)]
    lines = json.loads(summary_body(slack, opened + closed))["text"].split("\n")
    assert lines[0] == f"tradeops: {SUMMARY_LISTED + 5} escalations over the page rate, coalesced"
    assert lines[1 : SUMMARY_LISTED + 1] == [f"Alert{n} (no_rule) inc{n}" for n in range(SUMMARY_LISTED)]
    assert lines[SUMMARY_LISTED + 1] == "… and 5 more"
    assert lines[SUMMARY_LISTED + 2].startswith(f"resolved: {SUMMARY_LISTED + 3} inc100, ")
    assert lines[SUMMARY_LISTED + 2].count("inc") == SUMMARY_LISTED
    assert lines[SUMMARY_LISTED + 3] == "… and 3 more resolved"
    assert len(lines) == SUMMARY_LISTED + 4


def test_a_pagerduty_summary_is_a_critical_trigger_with_its_own_dedup_key_and_then_the_key() -> None:
    channel = pagerduty()
    stored = summary_body(channel, [record(7), record(8)])
    assert KEY not in stored
    body = json.loads(with_secrets(channel, stored))
    assert (body["event_action"], body["dedup_key"], body["routing_key"]) == ("trigger", "tradeops-summary:7", KEY)
    assert body["payload"]["severity"] == "critical"
    assert body["payload"]["custom_details"] == {
        "incidents": ["Alert7 (no_rule) inc7", "Alert8 (no_rule) inc8"],
        "count": 2,
    }
