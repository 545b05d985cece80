"""Per-incident locks: one holder at a time, late arrivals included; no lock left behind."""

from __future__ import annotations

import asyncio

from remediator.runtime.locks import KeyedLocks


async def test_a_late_arrival_queues_behind_a_woken_waiter_instead_of_getting_a_fresh_lock() -> None:
    locks = KeyedLocks()
    inside = 0
    most_inside = 0
    first_in, waiter_in = asyncio.Event(), asyncio.Event()
    release_first, release_waiter = asyncio.Event(), asyncio.Event()

    async def work(entered: asyncio.Event | None = None, hold_until: asyncio.Event | None = None) -> None:
        nonlocal inside, most_inside
        async with locks.hold("incident"):
            inside += 1
            most_inside = max(most_inside, inside)
            if entered is not None:
                entered.set()
            if hold_until is not None:
                await hold_until.wait()
            inside -= 1

    first = asyncio.create_task(work(first_in, release_first))
    await first_in.wait()
    waiter = asyncio.create_task(work(waiter_in, release_waiter))
    await asyncio.sleep(0)  # the waiter is queued on the lock
    release_first.set()
    await waiter_in.wait()  # the first released the lock and the waiter holds it now
    late = asyncio.create_task(work())  # must wait for the waiter, not get a lock of its own
    for _ in range(5):
        await asyncio.sleep(0)
    release_waiter.set()
    await asyncio.gather(first, waiter, late)
    assert most_inside == 1
    assert len(locks) == 0


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        await asyncio.wait_for(_enter(locks, "b"), 1)


async def _enter(locks: KeyedLocks, key: str) -> None:
    async with locks.hold(key):
        return
