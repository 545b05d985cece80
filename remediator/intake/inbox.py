"""The inbox: each payload is recorded verbatim as it arrives, and each alert in it is marked when done; after a
restart, the alerts not marked done are resumed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

from remediator.intake.payload import WebhookAlert, parse_payload
from remediator.state.base import Delivery


def unfinished(
    payloads: Iterable[tuple[int, dt.datetime, bytes]], finished: Collection[tuple[int, int]]
) -> list[tuple[Delivery, WebhookAlert]]:
    """Return the alerts of the recorded payloads that are not marked done, in arrival order."""
    resumed = []
    for inbox_id, received_at, body in payloads:
        for index, document in enumerate(parse_payload(body)["alerts"]):
            if (inbox_id, index) not in finished:
                resumed.append((Delivery(inbox_id, index, received_at), WebhookAlert.from_document(document)))
    return resumed
