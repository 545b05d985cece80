"""Calls to a server made together: what is submitted while one batch is on its way goes in the next one.

One round trip then serves every caller of a busy moment (the PostgreSQL audit's inserts, the Redis ping of
the webhook), and each caller's item is sent after it was submitted, never answered by an earlier round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Submitted(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class Batcher(Generic[T, R]):
    """Runs `run_batch` over the items submitted meanwhile, one batch at a time; `run_batch` returns one result
    per item, in order, or raises, and then every caller of that batch gets the error. A caller cancelled while
    waiting leaves its item in its batch (a write it asked for stands)."""

    def __init__(self, run_batch: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._run_batch = run_batch
        self._waiting: list[_Submitted[T, R]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Send `item` with the next batch and return its result."""
        submitted: _Submitted[T, R] = _Submitted(item, asyncio.get_running_loop().create_future())
        self._waiting.append(submitted)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run_waiting())
        return await submitted.future

    async def _run_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._run_batch([submitted.item for submitted in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"a batch of {len(batch)} items returned {len(results)} results")
            except Exception as error:  # noqa: BLE001 - handed to every caller in the batch, whose await raises it
                for submitted in batch:
                    if not submitted.future.done():
                        submitted.future.set_exception(error)
            else:
                for submitted, result in zip(batch, results, strict=True):
                    if not submitted.future.done():
                        submitted.future.set_result(result)
            finally:  # cancelled on its way (a stop): its callers are cancelled too, none waits for ever
                for submitted in batch:
                    if not submitted.future.done():
                        submitted.future.cancel()

    async def wait_idle(self) -> None:
        """Wait until every submitted item has been sent and answered."""
        while self._running is not None and not self._running.done():
            await asyncio.gather(self._running, return_exceptions=True)
