"""Accepting a webhook payload: validate, make room, record it durably, queue its alerts; only then is it
acknowledged. Nothing here acts."""

from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from common.config import validation_details
from common.logs import log_event
from remediator.intake.payload import WebhookAlert, parse_payload
from remediator.metrics import RemediatorMetrics
from remediator.runtime.engine import Engine
from remediator.state.base import AuditUnavailableError, Delivery, StateUnavailableError

logger = logging.getLogger("remediator.intake")
STATUS = operator.itemgetter("status")


@dataclass(frozen=True)
class Outcome:
    """The answer to one webhook call: an HTTP status and its JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def refused(status: int, message: str, details: list[str] | None = None) -> Outcome:
    """An error answer in the shape every endpoint uses."""
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return Outcome(status, body)


async def accept(engine: Engine, metrics: RemediatorMetrics, body: bytes) -> Outcome:
    """Validate (422), make sure there is room (503), record durably (503 when the audit store cannot), queue
    every alert, then answer 200; 503 also when the state backend is down (recorded; Alertmanager sends again)."""
    try:
        payload = parse_payload(body)
    except ValidationError as error:
        details = [str(d) for d in validation_details(error)][:20]
        return refused(422, "not an Alertmanager webhook payload (version 4)", details)
    alerts = payload["alerts"]
    if not engine.has_room(len(alerts)):
        return refused(503, "work queue full; retry later")
    try:
        inbox_id, received_at = await engine.store.receive(body, len(alerts))
    except AuditUnavailableError as error:
        log_event(logger, logging.ERROR, "audit_unavailable", error=str(error))
        return refused(503, "audit store unavailable; nothing was recorded, retry later")
    for position, document in enumerate(alerts):
        engine.enqueue(Delivery(inbox_id, position, received_at), WebhookAlert.from_document(document))
    firing = operator.countOf(map(STATUS, alerts), "firing")
    metrics.received_firing.inc(firing)
    metrics.received_resolved.inc(len(alerts) - firing)
    metrics.queue_depth.set(engine.queue.qsize())
    truncated = payload.get("truncatedAlerts", 0)
    if truncated:
        metrics.truncated_alerts.inc(truncated)
        log_event(logger, logging.WARNING, "truncated_alerts", group=payload.get("groupKey", ""), count=truncated)
    try:
        await engine.state.ping()
    except StateUnavailableError as error:
        log_event(logger, logging.ERROR, "state_unavailable", error=str(error))
        return refused(503, "state backend unavailable: recorded and escalated, no action taken")
    return Outcome(200, {"accepted": len(alerts), "truncated": truncated})
