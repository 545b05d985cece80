"""Escalation channels and what each is sent: a RemediationEscalated alert in Alertmanager (API v2), and
webhooks (generic, Slack, PagerDuty Events v2). Bodies are built once, at enqueue time, and stored without
secrets; the PagerDuty routing key is added only when sending."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from remediator.config import EscalationConfig, WebhookEscalation
from remediator.escalation.records import OutboxRecord

SUMMARY_LISTED = 20  # incidents named in a summary's text; the rest are counted
# What a page carries of the escalation's detail (the step history and the evidence, each already bounded): enough
# for a diagnose step's findings; chat messages carry less, and every page names the incident for the console.
PAGE_DETAIL_CHARS = 8000
CHAT_DETAIL_CHARS = 2000


@dataclass(frozen=True)
class Escalation:
    """One escalation of one incident."""

    incident: str
    labels: Mapping[str, str]
    reason: str
    detail: str
    resolved: bool = False


@dataclass(frozen=True)
class Channel:
    """A configured channel: its name (in records, metrics and logs), where it is, and its shape."""

    name: str
    url: str
    shape: str  # alertmanager, generic, slack, pagerduty
    webhook: WebhookEscalation | None = None
    alert_lifetime: dt.timedelta = dt.timedelta(days=1)


def channels(config: EscalationConfig) -> dict[str, Channel]:
    """The configured channels by name: `alertmanager`, `webhook:<shape>` (`webhook:<shape>:<n>` from the second
    webhook of one shape on)."""
    found: dict[str, Channel] = {}
    if config.alertmanager is not None:
        am = config.alertmanager
        lifetime = dt.timedelta(minutes=am.alert_lifetime_minutes)
        url = str(am.url).rstrip("/") + "/api/v2/alerts"
        found["alertmanager"] = Channel("alertmanager", url, "alertmanager", None, lifetime)
    for webhook in config.webhooks:
        name = f"webhook:{webhook.shape}"
        if name in found:
            name += f":{sum(1 for other in found if other.startswith(name)) + 1}"
        found[name] = Channel(name, webhook.resolved_url(), webhook.shape, webhook)
    return found


def alertmanager_alert(escalation: Escalation, lifetime: dt.timedelta, start: dt.datetime) -> dict[str, Any]:
    """Build the API v2 alert: alertname RemediationEscalated carrying the original labels (the same label set,
    and startsAt, on every retry: it is built once)."""
    labels = {key: value for key, value in escalation.labels.items() if key != "alertname"}
    labels["alertname"] = "RemediationEscalated"
    labels["original_alertname"] = escalation.labels.get("alertname", "")
    labels["escalation_reason"] = escalation.reason
    return {
        "labels": labels,
        "annotations": {
            "summary": f"tradeops could not remediate {labels['original_alertname']}: {escalation.reason}",
            "description": escalation.detail[:PAGE_DETAIL_CHARS],
            "incident": escalation.incident,
        },
        "startsAt": start.isoformat(),
        "endsAt": (start if escalation.resolved else start + lifetime).isoformat(),
        "generatorURL": "",
    }


def webhook_body(shape: str, escalation: Escalation) -> dict[str, Any]:
    """Build the webhook body in the channel's shape (PagerDuty's without its routing key)."""
    name = escalation.labels.get("alertname", "")
    text = f"tradeops escalation: {name} ({escalation.reason}) — {escalation.detail[:CHAT_DETAIL_CHARS]}"
    if shape == "slack":
        return {"text": ("RESOLVED: " if escalation.resolved else "") + text}
    if shape == "pagerduty":
        return {
            "event_action": "resolve" if escalation.resolved else "trigger",
            "dedup_key": escalation.incident,
            "payload": {
                "summary": text[:1024],
                "source": "tradeops-remediator",
                "severity": "critical" if escalation.labels.get("severity") == "critical" else "warning",
                "custom_details": {**escalation.labels, "tradeops_detail": escalation.detail[:PAGE_DETAIL_CHARS]},
            },
        }
    return {
        "incident": escalation.incident,
        "reason": escalation.reason,
        "detail": escalation.detail,
        "labels": dict(escalation.labels),
        "resolved": escalation.resolved,
    }


def record_body(channel: Channel, escalation: Escalation, at: dt.datetime) -> str:
    """The JSON a record keeps for the channel: what every attempt sends (secrets added at send time)."""
    if channel.shape == "alertmanager":
        return json.dumps([alertmanager_alert(escalation, channel.alert_lifetime, at)])
    return json.dumps(webhook_body(channel.shape, escalation))


def summary_body(channel: Channel, records: Sequence[OutboxRecord]) -> str:
    """One page for many records (a storm over the channel's rate): Alertmanager gets every record's alert in
    one call; the webhooks one message listing the incidents (name, reason, key), truncated with a count. The
    generic body also carries the full list, machine-readable."""
    if channel.shape == "alertmanager":
        return json.dumps([alert for record in records for alert in json.loads(record.body)])
    opened = [record for record in records if record.kind == "trigger"]
    closed = [record for record in records if record.kind == "resolve"]
    lines = [f"{r.alertname} ({r.reason}) {r.incident}" for r in opened[:SUMMARY_LISTED]]
    if len(opened) > SUMMARY_LISTED:
        lines.append(f"… and {len(opened) - SUMMARY_LISTED} more")
    if closed:
        lines.append(f"resolved: {len(closed)} " + ", ".join(r.incident for r in closed[:SUMMARY_LISTED]))
        if len(closed) > SUMMARY_LISTED:
            lines.append(f"… and {len(closed) - SUMMARY_LISTED} more resolved")
    title = f"tradeops: {len(opened)} escalations over the page rate, coalesced"
    text = title + "\n" + "\n".join(lines)
    if channel.shape == "slack":
        return json.dumps({"text": text})
    if channel.shape == "pagerduty":
        return json.dumps(
            {
                "event_action": "trigger",
                "dedup_key": f"tradeops-summary:{records[0].id}",
                "payload": {
                    "summary": title[:1024],
                    "source": "tradeops-remediator",
                    "severity": "critical",
                    "custom_details": {"incidents": lines, "count": len(opened)},
                },
            }
        )
    return json.dumps(
        {
            "summary": True,
            "count": len(records),
            "text": text,
            "incidents": [
                {"incident": r.incident, "alertname": r.alertname, "reason": r.reason, "kind": r.kind} for r in records
            ],
        }
    )


def with_secrets(channel: Channel, body: str) -> bytes:
    """The bytes to POST: the stored body, with the PagerDuty routing key read from config now."""
    if channel.shape == "pagerduty" and channel.webhook is not None:
        document = json.loads(body)
        document["routing_key"] = channel.webhook.resolved_routing_key()
        return json.dumps(document).encode()
    return body.encode()
