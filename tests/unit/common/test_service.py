"""The service scaffolding: background tasks stop when cancelled, and the collector is tuned at start."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

from common.service import GC_YOUNG_THRESHOLD, cancel_and_wait, tune_gc


@contextlib.contextmanager
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_tune_gc_freezes_what_start_up_made_and_collects_young_objects_less_often() -> None:
    with restored_gc():
        _, older, oldest = gc.get_threshold()
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, older, oldest)


async def test_cancel_and_wait_stops_every_task_and_its_own_cancellation_still_propagates() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(forever()) for _ in range(3)]
    await started.wait()
    await cancel_and_wait(tasks)
    assert all(task.cancelled() for task in tasks)

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # slow to stop

    slow = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(cancel_and_wait([slow]))
    await asyncio.sleep(0.01)
    waiting.cancel()  # whoever waits for the stop can still give up on it
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    assert waiting.cancelled()
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
