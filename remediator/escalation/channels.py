"""Escalation to a human: a RemediationEscalated alert in Alertmanager, and webhooks (Slack, PagerDuty)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from common.logs import log_event
from remediator.config import EscalationConfig, WebhookEscalation

logger = logging.getLogger("remediator.escalation")


class EscalationDeliveryError(Exception):
    """A channel did not accept the escalation."""


@dataclass(frozen=True)
class Escalation:
    """One escalation of one incident."""

    incident: str
    labels: Mapping[str, str]
    reason: str
    detail: str
    resolved: bool = False


def alertmanager_alert(escalation: Escalation, lifetime: dt.timedelta) -> dict[str, Any]:
    """Build the API v2 alert: alertname RemediationEscalated carrying the original labels."""
    labels = {key: value for key, value in escalation.labels.items() if key != "alertname"}
    labels["alertname"] = "RemediationEscalated"
    labels["original_alertname"] = escalation.labels.get("alertname", "")
    labels["escalation_reason"] = escalation.reason
    start = dt.datetime.now(dt.UTC)
    return {
        "labels": labels,
        "annotations": {
            "summary": f"tradeops could not remediate {labels['original_alertname']}: {escalation.reason}",
            "description": escalation.detail[:1000],
            "incident": escalation.incident,
        },
        "startsAt": start.isoformat(),
        "endsAt": (start if escalation.resolved else start + lifetime).isoformat(),
        "generatorURL": "",
    }


def webhook_body(channel: WebhookEscalation, escalation: Escalation) -> dict[str, Any]:
    """Build the webhook body in the channel's shape."""
    name = escalation.labels.get("alertname", "")
    text = f"tradeops escalation: {name} ({escalation.reason}) — {escalation.detail[:500]}"
    if channel.shape == "slack":
        return {"text": ("RESOLVED: " if escalation.resolved else "") + text}
    if channel.shape == "pagerduty":
        return {
            "routing_key": channel.resolved_routing_key(),
            "event_action": "resolve" if escalation.resolved else "trigger",
            "dedup_key": escalation.incident,
            "payload": {
                "summary": text[:1024],
                "source": "tradeops-remediator",
                "severity": "critical" if escalation.labels.get("severity") == "critical" else "warning",
                "custom_details": dict(escalation.labels),
            },
        }
    return {
        "incident": escalation.incident,
        "reason": escalation.reason,
        "detail": escalation.detail,
        "labels": dict(escalation.labels),
        "resolved": escalation.resolved,
    }


class Escalator:
    """Sends an escalation to every configured channel, each retried, failures reported not raised."""

    def __init__(self, config: EscalationConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, url: str, body: Any) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type((EscalationDeliveryError, aiohttp.ClientError, TimeoutError)),
            reraise=True,
        ):
            with attempt:
                async with self._session.post(url, json=body) as response:
                    if response.status >= 300:
                        raise EscalationDeliveryError(f"{url} answered {response.status}")

    def channel_names(self) -> list[str]:
        """Return the names `send` reports failed channels by."""
        names = ["alertmanager"] if self.config.alertmanager is not None else []
        return names + [f"webhook:{channel.shape}" for channel in self.config.webhooks]

    async def send(self, escalation: Escalation) -> list[str]:
        """Deliver to every channel; return the channels that failed (each failure logged)."""
        failed: list[str] = []
        targets: list[tuple[str, str, Any]] = []
        if self.config.alertmanager is not None:
            lifetime = dt.timedelta(minutes=self.config.alertmanager.alert_lifetime_minutes)
            url = str(self.config.alertmanager.url).rstrip("/") + "/api/v2/alerts"
            targets.append(("alertmanager", url, [alertmanager_alert(escalation, lifetime)]))
        for channel in self.config.webhooks:
            targets.append((f"webhook:{channel.shape}", str(channel.url), webhook_body(channel, escalation)))
        for name, url, body in targets:
            try:
                await self._post(url, body)
            except (EscalationDeliveryError, aiohttp.ClientError, TimeoutError) as error:
                failed.append(name)
                log_event(
                    logger,
                    logging.ERROR,
                    "escalation_failed",
                    channel=name,
                    incident=escalation.incident,
                    error=repr(error),
                )
        return failed

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
