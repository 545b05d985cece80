"""The work queue: payload bodies put whole, alerts parsed and taken one by one in order, waits and cancellations."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from remediator.intake.payload import WebhookAlert, parse_payload
from remediator.runtime.alert_queue import AlertQueue
from remediator.state.base import Delivery
from tests.remediator_helpers import alert, payload

AT = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def put(queue: AlertQueue, inbox_id: int, *instances: str) -> None:
    """Queue a payload of one alert per instance, as the webhook does: its body, validated."""
    body = json.dumps(payload(*(alert(instance=instance) for instance in instances))).encode()
    queue.put_payload(inbox_id, AT, body, len(parse_payload(body)["alerts"]))


async def test_alerts_come_out_one_by_one_in_the_order_their_payloads_were_put() -> None:
    queue = AlertQueue()
    put(queue, 7, "a", "b")
    put(queue, 8)
    put(queue, 9, "c")
    assert queue.qsize() == 3
    taken = [await queue.get() for _ in range(3)]
    assert [(delivery.inbox_id, delivery.position) for delivery, _ in taken] == [(7, 0), (7, 1), (9, 0)]
    assert [alert.labels["instance"] for _, alert in taken] == ["a", "b", "c"]
    assert all(isinstance(alert, WebhookAlert) for _, alert in taken)
    assert queue.qsize() == 0


async def test_resumed_alerts_keep_their_payload_positions() -> None:
    queue = AlertQueue()
    resumed = WebhookAlert.validate(alert(instance="late"))
    queue.put_resumed([(Delivery(3, 5, AT), resumed)])
    assert await queue.get() == (Delivery(3, 5, AT), resumed)


async def test_a_waiting_worker_is_woken_by_a_payload_and_every_waiter_gets_its_own_alert() -> None:
    queue = AlertQueue()
    waiters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    put(queue, 1, "a", "b")
    done, pending = await asyncio.wait(waiters, timeout=1)
    assert sorted(task.result()[1].labels["instance"] for task in done) == ["a", "b"]
    assert len(pending) == 1
    put(queue, 2, "c")
    assert (await asyncio.wait_for(pending.pop(), 5))[1].labels["instance"] == "c"


async def test_a_cancelled_wait_takes_nothing_and_passes_its_turn_to_the_next_waiter() -> None:
    queue = AlertQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    put(queue, 1, "a")  # wakes the first waiter ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    delivery, _ = await asyncio.wait_for(second, 5)
    assert delivery == Delivery(1, 0, AT)
    assert queue.qsize() == 0


async def test_join_waits_until_every_taken_alert_is_marked_done() -> None:
    queue = AlertQueue()
    await asyncio.wait_for(queue.join(), 5)  # nothing put: nothing to wait for
    put(queue, 1, "a", "b")
    joined = asyncio.create_task(queue.join())
    for _ in range(2):
        await queue.get()
    queue.task_done()
    await asyncio.sleep(0.01)
    assert not joined.done()
    queue.task_done()
    await asyncio.wait_for(joined, 5)
    with pytest.raises(ValueError, match="more times"):
        queue.task_done()
