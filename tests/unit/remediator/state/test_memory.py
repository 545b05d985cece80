"""The memory state backend: breakers per rule and target with one half-open trial, and limits kept in SQLite
across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.audit.sqlite import SqliteStore
from remediator.config import RateLimit
from remediator.state.base import Admission, BreakerPolicy, Denial
from remediator.state.memory import MemoryState

GENEROUS = RateLimit(per_minute=6000, burst=1000)
POLICY = BreakerPolicy(failures=3, open_seconds=600)


class Clock:
    """Wall-clock seconds that move only when told."""

    def __init__(self) -> None:
        self.at = 1_700_000_000.0

    def __call__(self) -> float:
        return self.at


def admission(
    rule: str,
    target: str,
    *,
    open_seconds: float = 600,
    trial_seconds: float = 3600,
    cooldown: float = 0,
    rate: RateLimit = GENEROUS,
    per_hour: int = 1000,
) -> Admission:
    return Admission(
        f"{rule}:{target}", open_seconds, rule, rate, target, cooldown, per_hour, "incident", trial_seconds
    )


@pytest.fixture
async def incidents(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    yield store
    await store.close()


async def open_breaker(state: MemoryState, rule: str, target: str) -> None:
    for _ in range(POLICY.failures):
        await state.record_outcome(f"{rule}:{target}", ok=False, policy=POLICY)


async def test_three_failures_of_one_rule_on_one_target_block_neither_another_rule_nor_another_target(
    incidents: SqliteStore,
) -> None:
    state = MemoryState(incidents)
    await open_breaker(state, "restart", "a")
    assert await state.admit(admission("restart", "a"), consume=True) is Denial.CIRCUIT
    assert await state.admit(admission("purge", "a"), consume=True) is None
    assert await state.admit(admission("restart", "b"), consume=True) is None


async def test_a_half_open_breaker_lets_exactly_one_trial_through_and_explain_takes_none(
    incidents: SqliteStore,
) -> None:
    state = MemoryState(incidents)
    await open_breaker(state, "restart", "a")
    half_open = admission("restart", "a", open_seconds=0)
    assert await state.admit(half_open, consume=False) is None  # explain: would run, takes nothing
    assert await state.admit(half_open, consume=False) is None
    assert await state.admit(half_open, consume=True) is None  # the trial
    assert [await state.admit(half_open, consume=True) for _ in range(5)] == [Denial.CIRCUIT] * 5
    assert await state.admit(half_open, consume=False) is Denial.CIRCUIT
    assert await state.budget_remaining(1000) == 999  # only the trial spent budget


async def test_a_failed_trial_reopens_the_breaker_and_a_successful_one_closes_it(incidents: SqliteStore) -> None:
    clock = Clock()
    state = MemoryState(incidents, clock=clock)
    await open_breaker(state, "restart", "a")
    clock.at += 601
    assert await state.admit(admission("restart", "a"), consume=True) is None  # the trial
    assert await state.record_outcome("restart:a", ok=False, policy=POLICY)  # open again, for a new period
    clock.at += 300
    assert await state.admit(admission("restart", "a"), consume=True) is Denial.CIRCUIT
    clock.at += 301
    assert await state.admit(admission("restart", "a"), consume=True) is None  # the next trial
    assert not await state.record_outcome("restart:a", ok=True, policy=POLICY)
    assert [await state.admit(admission("restart", "a"), consume=True) for _ in range(3)] == [None] * 3


async def test_a_trial_whose_lease_expires_lets_the_next_caller_take_a_new_one(incidents: SqliteStore) -> None:
    clock = Clock()
    state = MemoryState(incidents, clock=clock)
    await open_breaker(state, "restart", "a")
    clock.at += 601
    lease = admission("restart", "a", trial_seconds=120)
    assert await state.admit(lease, consume=True) is None
    clock.at += 119
    assert await state.admit(lease, consume=True) is Denial.CIRCUIT
    clock.at += 2  # the trial's holder never reported: its lease is over
    assert await state.admit(lease, consume=True) is None
    assert await state.admit(lease, consume=True) is Denial.CIRCUIT


async def test_a_restart_on_the_same_file_keeps_cooldown_bucket_budget_and_an_open_breaker(
    incidents: SqliteStore, tmp_path: Path
) -> None:
    path = tmp_path / "state.sqlite3"
    slow = RateLimit(per_minute=0.001, burst=2)
    first = MemoryState(incidents, path)
    await first.open()
    assert await first.admit(admission("restart", "a", cooldown=600), consume=True) is None
    assert await first.admit(admission("restart", "b", rate=slow), consume=True) is None
    assert await first.admit(admission("restart", "c", rate=slow), consume=True) is None  # bucket now empty
    await open_breaker(first, "purge", "q")
    # No close(): the process is killed; only what was committed counts.

    second = MemoryState(incidents, path)
    await second.open()
    assert await second.admit(admission("other", "a", cooldown=600), consume=True) is Denial.COOLDOWN
    assert await second.admit(admission("restart", "d", rate=slow), consume=True) is Denial.RATE
    assert await second.admit(admission("purge", "q"), consume=True) is Denial.CIRCUIT
    assert await second.budget_remaining(1000) == 997
    assert await second.admit(admission("any", "z", per_hour=3), consume=True) is Denial.BUDGET
    await second.close()


async def test_a_trial_taken_before_a_restart_still_holds_after_it(incidents: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = MemoryState(incidents, path)
    await first.open()
    await open_breaker(first, "restart", "a")
    assert await first.admit(admission("restart", "a", open_seconds=0), consume=True) is None
    second = MemoryState(incidents, path)
    await second.open()
    assert await second.admit(admission("restart", "a", open_seconds=0), consume=True) is Denial.CIRCUIT
    assert not await second.record_outcome("restart:a", ok=True, policy=POLICY)
    third = MemoryState(incidents, path)
    await third.open()
    assert await third.admit(admission("restart", "a"), consume=True) is None
    for state in (first, second, third):
        await state.close()
