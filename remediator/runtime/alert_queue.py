"""The work queue: accepted alerts waiting for a worker, kept a payload at a time.

The webhook puts a whole payload in one step, whatever its size: its body as the inbox keeps it (validated,
then kept as bytes, compressed when large: remediator/intake/inbox.py). A worker takes one alert at a time; a
payload's body is parsed again when its first alert is taken, and each WebhookAlert is made then. So the
webhook's path does no work per alert, and a backlog is bytes, which the garbage collector never walks (a
backlog of parsed alerts made every collection walk all of them) and which take a fifth of the memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from remediator.intake.inbox import parse_stored
from remediator.intake.payload import AlertDocument, WebhookAlert
from remediator.state.base import Delivery


@dataclass
class _Batch:
    """Alerts of one payload still to be taken: items[i] sits at position positions[i] of its payload; items are
    parsed from `body` when first needed."""

    inbox_id: int
    received_at: dt.datetime
    positions: Sequence[int]
    items: Sequence[AlertDocument] | Sequence[WebhookAlert] | None = None
    body: bytes | None = None
    taken: int = 0

    def item(self, index: int) -> AlertDocument | WebhookAlert:
        """The alert at `index`, parsing the body the first time."""
        if self.items is None:
            assert self.body is not None
            self.items = parse_stored(self.body)["alerts"]  # validated when it was received: cannot fail
            self.body = None
        return self.items[index]


class AlertQueue:
    """A FIFO of alerts, counted one by one, put a payload at a time; `join` waits until every taken alert is
    marked done. Cancelling a waiting `get` takes nothing."""

    def __init__(self) -> None:
        self._batches: collections.deque[_Batch] = collections.deque()
        self._size = 0
        self._unfinished = 0
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._finished = asyncio.Event()
        self._finished.set()

    def qsize(self) -> int:
        """Alerts waiting to be taken."""
        return self._size

    def put_payload(self, inbox_id: int, received_at: dt.datetime, body: bytes, count: int) -> None:
        """Queue every alert of one recorded and validated payload holding `count` alerts, in order; `body` is
        what the inbox keeps of it (remediator.intake.inbox.pack)."""
        self._put(_Batch(inbox_id, received_at, range(count), body=body))

    def put_resumed(self, items: Sequence[tuple[Delivery, WebhookAlert]]) -> None:
        """Queue alerts left unfinished by an earlier run, in the order given."""
        for delivery, alert in items:
            self._put(_Batch(delivery.inbox_id, delivery.received_at, [delivery.position], items=[alert]))

    def _put(self, batch: _Batch) -> None:
        count = len(batch.positions)
        if not count:
            return
        self._batches.append(batch)
        self._size += count
        self._unfinished += count
        self._finished.clear()
        for _ in range(min(count, len(self._getters))):
            self._wake_next()

    def _wake_next(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    async def get(self) -> tuple[Delivery, WebhookAlert]:
        """Take the oldest waiting alert, waiting for one if need be."""
        while not self._size:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
                if self._size and not getter.cancelled():
                    self._wake_next()  # it was woken for an alert it will not take: pass the turn on
                raise
        return self._take()

    def _take(self) -> tuple[Delivery, WebhookAlert]:
        batch = self._batches[0]
        index = batch.taken
        batch.taken += 1
        if batch.taken == len(batch.positions):
            self._batches.popleft()
        self._size -= 1
        item = batch.item(index)
        alert = item if isinstance(item, WebhookAlert) else WebhookAlert.from_document(item)
        return Delivery(batch.inbox_id, batch.positions[index], batch.received_at), alert

    def task_done(self) -> None:
        """Mark one taken alert as processed."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called more times than alerts were taken")
        self._unfinished -= 1
        if not self._unfinished:
            self._finished.set()

    async def join(self) -> None:
        """Wait until every alert put so far has been taken and marked done."""
        await self._finished.wait()
