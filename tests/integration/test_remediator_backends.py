"""The shared backends against real Redis and PostgreSQL: atomic limits, locks with TTLs, the audit store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from common.web import free_port
from remediator.audit.postgres import PostgresStore
from remediator.config import RateLimit
from remediator.intake.payload import WebhookAlert
from remediator.state.base import (
    Admission,
    AuditEntry,
    AuditUnavailableError,
    BreakerPolicy,
    Denial,
    LockLostError,
    StateUnavailableError,
)
from remediator.state.incident import Incident, now
from remediator.state.redis_backend import RedisState
from tests.remediator_helpers import alert, payload

pytestmark = pytest.mark.integration
GENEROUS = RateLimit(per_minute=6000, burst=1000)


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisState, RedisState]]:
    """Two independent clients on one Redis, as two replicas would be, under a prefix of their own."""
    prefix = "{tradeops-test-" + uuid.uuid4().hex + "}"
    first = RedisState(redis_url, prefix, 2.0, 3600)
    second = RedisState(redis_url, prefix, 2.0, 3600)
    yield first, second
    keys = await first.redis.keys(prefix + "*")
    if keys:
        await first.redis.delete(*keys)
    await first.close()
    await second.close()


def admission(
    target: str,
    *,
    per_hour: int = 1000,
    cooldown: float = 0,
    rate: RateLimit = GENEROUS,
    open_seconds: float = 600,
    rule: str = "rule",
    trial_seconds: float = 3600,
) -> Admission:
    return Admission(
        f"{rule}:{target}", open_seconds, rule, rate, target, cooldown, per_hour, "incident", trial_seconds
    )


def incident(key: str, escalate_at: dt.datetime | None) -> Incident:
    return Incident(key, "X", {"alertname": "X"}, "rule", "open", 1, now(), escalate_at, False, None)


async def test_the_budget_holds_exactly_when_two_replicas_admit_concurrently(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    verdicts = await asyncio.gather(
        *(
            (first if index % 2 else second).admit(admission(f"t{index}", per_hour=10), consume=True)
            for index in range(60)
        )
    )
    assert verdicts.count(None) == 10
    assert verdicts.count(Denial.BUDGET) == 50
    assert await first.budget_remaining(10) == 0
    assert await second.budget_remaining(25) == 15


async def test_a_cooldown_taken_by_one_replica_holds_for_the_other(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas
    results = await asyncio.gather(
        first.admit(admission("container:x", cooldown=600), consume=True),
        second.admit(admission("container:x", cooldown=600), consume=True),
    )
    assert sorted(map(str, results)) == ["None", "cooldown"]
    assert await first.admit(admission("container:y", cooldown=600), consume=True) is None


async def test_a_rules_token_bucket_is_shared_and_a_denied_claim_spends_nothing(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    slow = RateLimit(per_minute=0.001, burst=3)
    verdicts = [
        await (first if index % 2 else second).admit(admission(f"t{index}", rate=slow, cooldown=600), consume=True)
        for index in range(10)
    ]
    assert verdicts.count(None) == 3
    assert verdicts.count(Denial.RATE) == 7
    assert await first.budget_remaining(1000) == 997  # only the admitted ones spent budget
    # Without consume nothing is taken: the cooldown of an unadmitted target is still free.
    assert await second.admit(admission("t9", cooldown=600), consume=False) is None


async def test_a_circuit_opens_after_consecutive_failures_on_any_replica_and_closes_on_success(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    policy = BreakerPolicy(failures=2, open_seconds=600)
    assert await first.admit(admission("a"), consume=False) is None
    assert not await first.record_outcome("rule:a", ok=False, policy=policy)
    assert await second.record_outcome("rule:a", ok=False, policy=policy)
    assert await first.admit(admission("a"), consume=True) is Denial.CIRCUIT
    assert await first.budget_remaining(1000) == 1000  # a denied claim takes nothing
    # Per rule and target: neither another rule on the target nor the rule on another target is blocked.
    assert await second.admit(admission("a", rule="other"), consume=False) is None
    assert await second.admit(admission("b"), consume=False) is None
    assert await first.admit(admission("a", open_seconds=0), consume=False) is None  # half-open after the period
    assert not await second.record_outcome("rule:a", ok=True, policy=policy)
    assert await first.admit(admission("a"), consume=False) is None


async def test_two_replicas_racing_for_a_half_open_breaker_get_exactly_one_trial(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    policy = BreakerPolicy(failures=1, open_seconds=0)
    assert await first.record_outcome("rule:a", ok=False, policy=policy)
    half_open = admission("a", open_seconds=0)
    assert await second.admit(half_open, consume=False) is None  # explain takes no trial
    verdicts = await asyncio.gather(
        *((first if index % 2 else second).admit(half_open, consume=True) for index in range(20))
    )
    assert verdicts.count(None) == 1
    assert verdicts.count(Denial.CIRCUIT) == 19
    assert await first.budget_remaining(1000) == 999
    # The trial failed: open again for a new period; then a trial that succeeds closes it.
    assert await second.record_outcome("rule:a", ok=False, policy=policy)
    assert await first.admit(admission("a", open_seconds=600), consume=True) is Denial.CIRCUIT
    assert await first.admit(half_open, consume=True) is None
    assert not await second.record_outcome("rule:a", ok=True, policy=policy)
    closed = await asyncio.gather(first.admit(half_open, consume=True), second.admit(half_open, consume=True))
    assert list(closed) == [None, None]


async def test_a_half_open_trial_whose_replica_died_lets_another_take_a_new_one_when_its_lease_ends(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    policy = BreakerPolicy(failures=1, open_seconds=0)
    assert await first.record_outcome("rule:a", ok=False, policy=policy)
    lease = admission("a", open_seconds=0, trial_seconds=0.3)
    assert await first.admit(lease, consume=True) is None  # then this replica dies: no outcome comes
    assert await second.admit(lease, consume=True) is Denial.CIRCUIT
    for _ in range(100):  # bounded: the lease is 0.3 s on Redis' clock
        await asyncio.sleep(0.05)
        if await second.admit(lease, consume=False) is None:
            break
    assert await second.admit(lease, consume=True) is None
    assert await first.admit(lease, consume=True) is Denial.CIRCUIT


async def test_incidents_and_their_timers_are_shared(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas
    past = now() - dt.timedelta(seconds=1)
    await first.save(incident("a#r", past))
    await first.save(incident("b#r", now() + dt.timedelta(hours=1)))
    due = await second.due_timers(now())
    assert [i.key for i in due] == ["a#r"]
    loaded = await second.incident("a#r")
    assert loaded is not None
    assert loaded.labels == {"alertname": "X"}
    assert loaded.escalate_at == past
    loaded.escalated = True
    await second.save(loaded)
    assert await first.due_timers(now()) == []
    # An incident whose key expired (retention) leaves the pending-escalation index too.
    await first.save(incident("c#r", past))
    await first.redis.delete(first._key("incident", "c#r"))
    assert await second.due_timers(now()) == []
    assert await first.redis.zscore(first._key("timers"), "c#r") is None


async def test_an_incident_lock_is_exclusive_across_replicas_and_expires_when_its_holder_dies(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    order: list[str] = []

    async def hold(state: RedisState, name: str) -> None:
        async with state.hold("incident#rule", ttl_seconds=10) as held:
            assert held.won
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold(first, "a"), hold(second, "b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
    # A holder that dies never releases: its lock ends with its TTL, and the other replica gets it then.
    dead = first.redis.lock(first._key("lock", "crashed#rule"), timeout=0.3)
    assert await dead.acquire()
    async with second.hold("crashed#rule", ttl_seconds=5) as held:
        assert held.won
    # A lock that outlives the waiter's patience (its own TTL + 1 s) is given up on, never taken over.
    await first.redis.set(first._key("lock", "stuck#rule"), "another replica", px=60_000)
    async with second.hold("stuck#rule", ttl_seconds=0.2) as held:
        assert not held.won
        assert held.incident is None
    assert await first.redis.get(first._key("lock", "stuck#rule")) == b"another replica"


async def test_a_hold_reads_the_incident_and_saves_it_as_it_releases_but_not_after_an_error(
    replicas: tuple[RedisState, RedisState],
) -> None:
    first, second = replicas
    await first.save(incident("h#r", None))
    async with first.hold("h#r", ttl_seconds=5) as held:
        assert held.won
        assert held.incident is not None
        assert held.incident.attempts == 1
        held.incident.attempts = 2
        held.save_on_release = held.incident
    saved = await second.incident("h#r")
    assert saved is not None
    assert saved.attempts == 2

    async def fail_half_way() -> None:
        async with first.hold("h#r", ttl_seconds=5) as held:
            assert held.incident is not None
            held.incident.attempts = 3
            held.save_on_release = held.incident
            raise RuntimeError("the decision failed half way")

    with pytest.raises(RuntimeError):
        await fail_half_way()
    kept = await second.incident("h#r")
    assert kept is not None
    assert kept.attempts == 2  # not saved after an error
    async with second.hold("h#r", ttl_seconds=5) as held:  # released both times: no wait for a TTL
        assert held.won
    assert await first.redis.exists(first._key("lock", "h#r")) == 0


async def test_every_operation_fails_closed_when_redis_is_unreachable() -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", "{t}", 0.5, 60)
    policy = BreakerPolicy(1, 1)
    calls = [
        state.ping(),
        state.incident("k"),
        state.save(incident("k", None)),
        state.due_timers(now()),
        state.admit(admission("t"), consume=True),
        state.record_outcome("a", ok=True, policy=policy),
        state.budget_remaining(1),
    ]
    for call in calls:
        with pytest.raises(StateUnavailableError):
            await call
    with pytest.raises(StateUnavailableError):
        async with state.hold("k", 1):
            pass
    await state.close()


def body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(payload(*alerts)).encode()


async def test_the_postgres_audit_store_keeps_each_replicas_inbox_and_one_shared_trail(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn, name, 2, 5.0) for name in ("r1", "r2", "r3")]
    await asyncio.gather(*(store.open() for store in stores))  # the schema is created once, concurrently
    first, second, _ = stores
    alerts = [alert(starts=f"2026-11-22T0{i}:00:00Z") for i in range(3)]
    first_id, _ = await first.receive(body(*alerts), 3)
    second_id, _ = await second.receive(body(alert(name="Oth\x00er", note="é\x00\u202e")), 1)
    assert second_id > first_id
    pending = await first.pending()
    assert [(d.inbox_id, d.position) for d, _ in pending] == [(first_id, 0), (first_id, 1), (first_id, 2)]
    assert [a.startsAt for _, a in pending] == [WebhookAlert.validate(a).startsAt for a in alerts]
    await first.record([], done=pending[0][0])
    await first.record([], done=pending[0][0])  # marked once, however often it is said
    assert [d.position for d, _ in await first.pending()] == [1, 2]
    (other,) = await second.pending()
    assert other[1].name == "Oth\x00er"  # verbatim, NUL and all
    await second.record([AuditEntry(other[0].received_at, other[1], "received")])
    entry = AuditEntry(now(), pending[1][1], "decision", "rule", "executed", "x" * 10_000)
    await first.record([AuditEntry(pending[1][0].received_at, pending[1][1], "received"), entry], done=pending[1][0])
    recent = await second.recent(10)
    assert [e["event"] for e in recent[:2]] == ["decision", "received"]
    assert recent[0]["decision"] == "executed"
    assert len(recent[0]["detail"]) == 4000
    assert {e["replica"] for e in recent} == {"r1", "r2"}
    assert any(e["labels"].get("note") == "é\x00\u202e" for e in recent)
    await first.prune(now() + dt.timedelta(seconds=1))
    assert await second.recent(10) == []
    assert [d.position for d, _ in await first.pending()] == [2]  # unfinished payloads are never pruned
    await first.record([], done=pending[2][0])
    assert await first.pending() == []
    await first.prune(now() + dt.timedelta(seconds=1))
    for store in stores:
        await store.close()


async def test_payloads_received_together_each_get_their_own_inbox_row_and_id(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, "r1", 2, 5.0)
    await store.open()
    bodies = [body(*(alert(instance=f"{n}-{i}") for i in range(n % 4 + 1))) for n in range(40)]
    received = await asyncio.gather(*(store.receive(raw, raw.count(b'"fingerprint"')) for raw in bodies))
    ids = [inbox_id for inbox_id, _ in received]
    assert len(set(ids)) == len(ids)
    by_id: dict[int, list[str]] = {}
    for delivery, pending_alert in await store.pending():
        by_id.setdefault(delivery.inbox_id, []).append(pending_alert.labels["instance"])
    for n, inbox_id in enumerate(ids):  # each caller's id holds that caller's payload
        assert by_id[inbox_id] == [f"{n}-{i}" for i in range(n % 4 + 1)]
    await store.close()


async def test_an_unreachable_postgres_is_an_audit_error_not_a_crash() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/x", "r", 1, 1.0)
    with pytest.raises(AuditUnavailableError):
        await store.open()
    with pytest.raises(AuditUnavailableError):
        await store.receive(body(alert()), 1)
    with pytest.raises(AuditUnavailableError):  # every record waiting on a failed write hears of it
        await asyncio.gather(*(store.record([]) for _ in range(3)))
    await store.close()


async def test_a_lock_is_renewed_while_its_holder_works_past_the_ttl(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas
    async with first.hold("renewed#r", 1.0) as held:
        assert held.won
        await asyncio.sleep(2.5)  # longer than the TTL: without renewal the lock would be gone
        async with second.hold("renewed#r", 1.0) as contender:
            assert not contender.won
        assert not held.lost


async def test_a_holder_whose_lock_was_taken_over_writes_nothing_more(replicas: tuple[RedisState, RedisState]) -> None:
    first, second = replicas
    lock = first._key("lock", "fenced#r")
    async with first.hold("fenced#r", 5.0) as held:
        assert held.won
        await first.redis.set(lock, "successor-token")  # expired and taken by another replica meanwhile
        stale = incident("fenced#r", None)
        with pytest.raises(LockLostError):
            await first.save(stale, held)
        held.save_on_release = stale
    assert held.lost
    assert await second.incident("fenced#r") is None  # neither the save nor the release wrote it
    assert await first.redis.get(lock) == b"successor-token"  # and the successor's lock was left alone
