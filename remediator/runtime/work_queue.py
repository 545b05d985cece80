"""The work queue: accepted alerts waiting for a worker, most urgent first (priority, then severity, then age)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping

from remediator.intake.payload import WebhookAlert
from remediator.state.base import Delivery

PRIORITY_RANK = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}
SEVERITY_RANK = {"critical": 0, "page": 0, "error": 1, "high": 1, "warning": 2, "info": 3, "none": 4}
UNRANKED = 5


def urgency(labels: Mapping[str, str]) -> tuple[int, int]:
    """Order of urgency of an alert: its `priority` (P0 first), then its `severity` (critical first); a resolve
    counts as urgent as its alert."""
    return (
        PRIORITY_RANK.get(labels.get("priority", ""), UNRANKED),
        SEVERITY_RANK.get(labels.get("severity", "").lower(), UNRANKED),
    )


class WorkQueue:
    """Alerts by urgency, then in arrival order; `join` waits until every alert put has been marked done."""

    def __init__(self) -> None:
        self._queue: asyncio.PriorityQueue[tuple[int, int, int, Delivery, WebhookAlert]] = asyncio.PriorityQueue()
        self._order = itertools.count()

    def qsize(self) -> int:
        """Alerts waiting to be taken."""
        return self._queue.qsize()

    def put(self, delivery: Delivery, alert: WebhookAlert) -> None:
        """Queue one alert (never blocks: the webhook checks for room first)."""
        priority, severity = urgency(alert.labels)
        self._queue.put_nowait((priority, severity, next(self._order), delivery, alert))

    async def get(self) -> tuple[Delivery, WebhookAlert]:
        """Take the most urgent waiting alert, waiting for one if need be."""
        _, _, _, delivery, alert = await self._queue.get()
        return delivery, alert

    def task_done(self) -> None:
        """Mark one taken alert as processed."""
        self._queue.task_done()

    async def join(self) -> None:
        """Wait until every alert put so far has been taken and marked done."""
        await self._queue.join()
