"""The work queue takes the most urgent alert first, then the oldest."""

from __future__ import annotations

import datetime as dt

from remediator.intake.payload import WebhookAlert
from remediator.runtime.work_queue import WorkQueue, urgency
from remediator.state.base import Delivery

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def queued(name: str, **labels: str) -> tuple[Delivery, WebhookAlert]:
    return Delivery(1, 0, AT), WebhookAlert("firing", {"alertname": name, **labels}, AT, "ab")


async def test_a_p0_put_behind_a_backlog_of_warnings_is_taken_first() -> None:
    queue = WorkQueue()
    for n in range(1000):
        queue.put(*queued(f"warning{n}", priority="P3", severity="warning"))
    queue.put(*queued("urgent", priority="P0", severity="critical"))
    _, first = await queue.get()
    assert first.name == "urgent"


async def test_alerts_of_equal_urgency_are_taken_in_arrival_order() -> None:
    queue = WorkQueue()
    for name in ("a", "b", "c"):
        queue.put(*queued(name, priority="P1"))
    assert [(await queue.get())[1].name for _ in range(3)] == ["a", "b", "c"]


def test_severity_breaks_ties_of_priority_and_unlabelled_alerts_come_last() -> None:
    assert urgency({"priority": "P1", "severity": "critical"}) < urgency({"priority": "P1", "severity": "warning"})
    assert urgency({"priority": "P3"}) < urgency({})
    assert urgency({"severity": "CRITICAL"}) == urgency({"severity": "critical"})
