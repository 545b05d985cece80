"""The memory backend's read of the limits left (MemoryState.limits_left): cooldowns running per rule, bucket
tokens, the hourly budget and breaker states as admit() judges them, read from the SQLite-backed limits (after a
restart too), changing nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.audit.sqlite import SqliteStore
from remediator.config import RateLimit
from remediator.state.base import BreakerLeft, BreakerPolicy, LimitsQuery, RuleLimits
from remediator.state.memory import MemoryState
from tests.unit.remediator.state.test_memory import Clock, admission

RATE = RateLimit(per_minute=1, burst=3)
POLICY = BreakerPolicy(failures=2, open_seconds=600)


def query(*rules: RuleLimits, per_hour: int = 10) -> LimitsQuery:
    return LimitsQuery(rules, per_hour, POLICY.open_seconds)


def limits(rule: str, cooldown: float = 300, rate: RateLimit = RATE, targets: str = ".*") -> RuleLimits:
    return RuleLimits(rule, rate, cooldown, re.compile(targets))


@pytest.fixture
async def incidents(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    yield store
    await store.close()


async def test_nothing_claimed_reads_full_buckets_the_whole_budget_and_no_cooldown_or_breaker(
    incidents: SqliteStore,
) -> None:
    state = MemoryState(incidents, clock=Clock())
    left = await state.limits_left(query(limits("a")))
    assert left.budget_left == 10
    [rule] = left.rules
    assert (rule.rule, rule.tokens, rule.burst, rule.cooldowns, rule.breakers) == ("a", 3.0, 3, (), ())


async def test_claims_show_as_cooldowns_until_their_end_tokens_spent_and_budget_spent(
    incidents: SqliteStore,
) -> None:
    clock = Clock()
    state = MemoryState(incidents, clock=clock)
    for target in ("collector:binance", "collector:kraken"):
        assert await state.admit(admission("a", target, cooldown=300, rate=RATE, per_hour=10), consume=True) is None
    await state.admit(admission("b", "other", cooldown=300, rate=RATE, per_hour=10), consume=True)
    clock.at += 60
    left = await state.limits_left(query(limits("a", targets="collector:.+"), limits("b", targets="other")))
    a, b = left.rules
    assert left.budget_left == 7
    assert a.tokens == pytest.approx(2.0)  # 3 - 2 claims + 1 refilled in the minute
    assert [(c.target, c.until.timestamp()) for c in a.cooldowns] == [
        ("collector:binance", clock.at - 60 + 300),
        ("collector:kraken", clock.at - 60 + 300),
    ]
    assert [c.target for c in b.cooldowns] == ["other"]  # each rule's own targets only
    clock.at += 300
    left = await state.limits_left(query(limits("a", targets="collector:.+")))
    assert left.rules[0].cooldowns == ()  # ended
    assert left.rules[0].tokens == 3.0  # refilled, never above the burst
    clock.at += 3600
    assert (await state.limits_left(query(limits("a")))).budget_left == 10  # out of the trailing hour


async def test_a_rule_whose_rate_changed_reads_a_full_bucket_as_admit_would(incidents: SqliteStore) -> None:
    state = MemoryState(incidents, clock=Clock())
    await state.admit(admission("a", "t", rate=RATE), consume=True)
    other = RateLimit(per_minute=1, burst=5)
    assert (await state.limits_left(query(limits("a", rate=other)))).rules[0].tokens == 5.0


async def test_breakers_read_closed_with_failures_open_until_half_open_then_half_open_and_its_trial(
    incidents: SqliteStore,
) -> None:
    clock = Clock()
    state = MemoryState(incidents, clock=clock)
    await state.record_outcome("a:t1", ok=False, policy=POLICY)
    await state.record_outcome("ab:t1", ok=False, policy=POLICY)  # another rule whose name starts alike
    [breaker] = (await state.limits_left(query(limits("a")))).rules[0].breakers
    assert breaker == BreakerLeft("t1", "closed", 1, None)
    await state.record_outcome("a:t1", ok=False, policy=POLICY)
    opened = clock.at
    [breaker] = (await state.limits_left(query(limits("a")))).rules[0].breakers
    assert (breaker.state, breaker.failures) == ("open", 2)
    assert breaker.until is not None
    assert breaker.until.timestamp() == opened + 600
    clock.at += 601
    [breaker] = (await state.limits_left(query(limits("a")))).rules[0].breakers
    assert (breaker.state, breaker.until) == ("half_open", None)  # a trial may start
    assert await state.admit(admission("a", "t1", trial_seconds=120), consume=True) is None
    [breaker] = (await state.limits_left(query(limits("a")))).rules[0].breakers
    assert breaker.state == "half_open"
    assert breaker.until is not None
    assert breaker.until.timestamp() == clock.at + 120
    await state.record_outcome("a:t1", ok=True, policy=POLICY)
    assert (await state.limits_left(query(limits("a")))).rules[0].breakers == ()  # closed and forgotten


async def test_the_read_claims_nothing_and_a_restart_reads_the_same_from_the_state_file(
    incidents: SqliteStore, tmp_path: Path
) -> None:
    clock = Clock()
    path = tmp_path / "state.sqlite3"
    state = MemoryState(incidents, path, clock)
    await state.admit(admission("a", "t", cooldown=300, rate=RATE, per_hour=10), consume=True)
    await state.record_outcome("a:t", ok=False, policy=BreakerPolicy(failures=1, open_seconds=600))
    before = await state.limits_left(query(limits("a", targets="t")))
    for _ in range(5):
        assert await state.limits_left(query(limits("a", targets="t"))) == before
    assert await state.admit(admission("b", "u", rate=RATE, per_hour=2), consume=True) is None  # budget unspent
    await state.close()
    restarted = MemoryState(incidents, path, clock)
    after = await restarted.limits_left(query(limits("a", targets="t")))
    assert after.rules == before.rules
    assert after.budget_left == before.budget_left - 1
    await restarted.close()
