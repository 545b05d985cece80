"""The acceptance gate: webhook calls before decisions, for a bounded time, never with a half-full queue."""

from __future__ import annotations

import asyncio

from remediator.runtime.gate import AcceptanceGate


async def held(gate: AcceptanceGate, backlog: int = 1, capacity: int = 100) -> asyncio.Task[None]:
    """A worker's turn that is still waiting after the loop has run it."""
    task = asyncio.create_task(gate.turn(backlog, capacity))
    await asyncio.sleep(0.01)
    assert not task.done()
    return task


async def test_a_worker_decides_at_once_when_no_webhook_call_is_in_progress() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60)
    await asyncio.wait_for(gate.turn(backlog=5, capacity=100), 5)


async def test_a_worker_waits_while_a_webhook_call_is_in_progress_and_decides_once_it_is_answered() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60)
    with gate.call():
        with gate.call():
            waiting = await held(gate)
        await asyncio.sleep(0.01)
        assert not waiting.done()  # one call is still in progress
    await asyncio.wait_for(waiting, 5)


async def test_a_worker_never_waits_once_the_backlog_is_half_the_queue() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60)
    with gate.call():
        await asyncio.wait_for(gate.turn(backlog=50, capacity=100), 5)
        await held(gate, backlog=49, capacity=100)


async def test_after_the_deferral_workers_catch_up_until_every_accepted_alert_is_decided() -> None:
    gate = AcceptanceGate(max_deferral_seconds=0.05)
    with gate.call():  # a flood: a call is always in progress
        await asyncio.wait_for(gate.turn(backlog=3, capacity=100), 5)  # held back, then let through
        assert gate.catching_up
        await asyncio.wait_for(gate.turn(backlog=3, capacity=100), 5)  # no more waiting meanwhile
        gate.decided(backlog=2)
        assert gate.catching_up  # alerts are still queued
        gate.decided(backlog=0)
        assert not gate.catching_up
        await held(gate)  # a new burst is answered first again


async def test_the_deferral_is_not_reset_while_another_worker_still_holds_an_alert() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60)
    with gate.call():
        waiting = await held(gate)
        gate.decided(backlog=0)  # the queue is empty, but one alert is held by the waiting worker
    await asyncio.wait_for(waiting, 5)


async def test_the_deferral_counts_from_the_first_wait_of_a_burst_not_from_each_wait() -> None:
    now = [100.0]
    gate = AcceptanceGate(max_deferral_seconds=10, clock=lambda: now[0])
    with gate.call():
        first = await held(gate)
        now[0] += 10  # the burst has lasted the whole deferral by the next worker's turn
        await asyncio.wait_for(gate.turn(backlog=2, capacity=100), 5)
        assert gate.catching_up
    await asyncio.wait_for(first, 5)


async def test_a_worker_woken_as_one_call_ends_waits_on_when_the_next_call_has_already_started() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60)
    first = gate.call()
    first.__enter__()
    waiting = await held(gate)
    first.__exit__(None, None, None)  # wakes the worker ...
    with gate.call():  # ... but another call starts before it runs
        await asyncio.sleep(0.01)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 5)


async def test_a_worker_waits_out_the_quiet_period_after_the_last_call_and_calls_within_it_extend_it() -> None:
    gate = AcceptanceGate(max_deferral_seconds=60, quiet_seconds=0.1)
    with gate.call():
        waiting = await held(gate)
    await asyncio.sleep(0.02)
    assert not waiting.done()  # the burst may not be over: the last call ended a moment ago
    with gate.call():  # the next call of the burst
        pass
    await asyncio.sleep(0.02)
    assert not waiting.done()
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(gate.turn(backlog=1, capacity=100), 5)  # quiet now: no waiting at all
