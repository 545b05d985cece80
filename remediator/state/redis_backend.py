"""The Redis state backend: replicas share incidents (attempts, timers, tombstones), limits, breakers and locks.

Every check-and-update is one Lua script (atomic in Redis, timed by Redis' own clock, so replicas' clocks
need not agree). Incidents are serialised under a per-incident lock with a TTL, renewed while held, so a replica
that dies mid-action blocks the incident only until the TTL ends; taking the lock reads the incident, and
releasing it saves the incident, each in one round trip; every save under the lock is fenced by its token. Any
Redis failure is a StateUnavailableError: the engine then fails closed (no action) and escalates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from common.batcher import Batcher
from common.logs import log_event
from remediator.state.base import (
    Admission,
    BreakerPolicy,
    CooldownLeft,
    Denial,
    Hold,
    IncidentStore,
    LimitsLeft,
    LimitsQuery,
    LockLostError,
    RuleLeft,
    RuleLimits,
    StateUnavailableError,
    breaker_left,
    epoch,
)
from remediator.state.incident import Incident
from remediator.state.read_copy import ReadCopies

logger = logging.getLogger("remediator.state")
T = TypeVar("T")

NOW_MS = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
# KEYS: cooldown, bucket, budget, breaker. ARGV: cooldown_ms, burst, per_minute, per_hour, claimant, consume,
# breaker_open_ms, trial_ms. An open breaker past its open period is half-open: one claim takes its trial (the
# breaker's `trial_until` lease) and every other is 'circuit' until the trial's outcome or the lease's end.
ADMIT = (
    NOW_MS
    + """
local cooldown_ms = tonumber(ARGV[1])
local consume = ARGV[6] == '1'
local breaker = redis.call('HMGET', KEYS[4], 'opened_at', 'trial_until')
local opened = tonumber(breaker[1])
local half_open = false
if opened ~= nil then
  if now - opened < tonumber(ARGV[7]) then return 'circuit' end
  local trial_until = tonumber(breaker[2])
  if trial_until ~= nil and now < trial_until then return 'circuit' end
  half_open = true
end
if cooldown_ms > 0 and redis.call('EXISTS', KEYS[1]) == 1 then return 'cooldown' end
local burst = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local bucket = redis.call('HMGET', KEYS[2], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or burst
local updated = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * per_minute / 60000)
if consume and tokens < 1 then return 'rate' end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 3600000)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return 'budget' end
if consume then
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'updated', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst / per_minute * 60000) + 60000)
  redis.call('ZADD', KEYS[3], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], 3600000)
  if cooldown_ms > 0 then redis.call('SET', KEYS[1], '1', 'PX', math.ceil(cooldown_ms)) end
  if half_open then
    local trial_ms = math.ceil(tonumber(ARGV[8]))
    redis.call('HSET', KEYS[4], 'trial_until', now + trial_ms)
    if redis.call('PTTL', KEYS[4]) < trial_ms + 86400000 then redis.call('PEXPIRE', KEYS[4], trial_ms + 86400000) end
  end
end
return 'ok'
"""
)
# KEYS: lock, incident. ARGV: token, ttl_ms. Returns {1, incident or false} when the lock was taken, else {0}.
HOLD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]), redis.call('EXISTS', KEYS[3])}
end
return {0}
"""
# KEYS: incident, timer index, lock. ARGV: incident JSON ('' saves nothing), due score ('': no timer), TTL
# seconds, incident key, lock token ('': unfenced), '1' to release the lock. A fenced call does nothing and
# returns 0 unless its token still holds the lock: a holder whose lock expired never overwrites its successor.
SAVE_RELEASE = """
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[5] then return 0 end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4]) else redis.call('ZREM', KEYS[2], ARGV[4]) end
end
if ARGV[6] == '1' and ARGV[5] ~= '' then redis.call('DEL', KEYS[3]) end
return 1
"""
# KEYS: lock. ARGV: token, ttl_ms. Extends the lock while this token holds it; 0 when it was lost.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
LOCK_POLL_SECONDS = 0.02
SCAN_COUNT = 1000
SCAN_ROUNDS = 20  # SCAN calls per kind of key in one limits read: bounded however large the database
# KEYS: budget. ARGV: per_hour.
BUDGET = (
    NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return math.max(0, tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1]))
"""
)
# KEYS: breaker. ARGV: ok, threshold, open_ms. A success closes the breaker; a failure counts, and opens it at
# the threshold or when it was open (a failed trial: another open period, the trial's lease ended). Returns 1
# when the circuit is open afterwards.
BREAKER_RECORD = (
    NOW_MS
    + """
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) return 0 end
local was_open = redis.call('HEXISTS', KEYS[1], 'opened_at') == 1
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) or was_open then
  redis.call('HSET', KEYS[1], 'opened_at', now)
  redis.call('HDEL', KEYS[1], 'trial_until')
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 86400000)
  return 1
end
return 0
"""
)


class RedisState:
    """Shared policy state in one Redis (or a Sentinel-managed primary)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        timeout_seconds: float,
        retention_seconds: float,
        closed_seconds: float | None = None,
        reads: IncidentStore | None = None,
        copy_failed: Callable[[], None] | None = None,
    ) -> None:
        self.redis: Redis = Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, decode_responses=False
        )
        self.prefix = prefix
        # The audit store the console and the read API query: each incident saved here is copied there too, best
        # effort (remediator/state/read_copy.py).
        self.copies = ReadCopies(reads, self.redis, self._key, copy_failed) if reads is not None else None
        self.retention_seconds = int(retention_seconds)
        # A closed incident is a tombstone: kept this long, so a late firing copy of it never acts.
        self.closed_seconds = int(closed_seconds if closed_seconds is not None else retention_seconds)
        self._admit = self.redis.register_script(ADMIT)
        self._budget = self.redis.register_script(BUDGET)
        self._breaker_record = self.redis.register_script(BREAKER_RECORD)
        self._hold = self.redis.register_script(HOLD)
        self._save_release = self.redis.register_script(SAVE_RELEASE)
        self._renew = self.redis.register_script(RENEW)
        self._pings: Batcher[None, None] = Batcher(self._ping_batch)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except (RedisError, OSError, TimeoutError) as error:
            raise StateUnavailableError(f"Redis state backend unavailable: {error}") from error

    @contextlib.asynccontextmanager
    async def hold(self, key: str, ttl_seconds: float) -> AsyncIterator[Hold]:
        """Hold the incident's lock across replicas, reading the incident as it is taken. The lock is renewed
        while held and expires `ttl_seconds` after this replica dies; a lock held elsewhere is waited for, at most
        `ttl_seconds` + 1. Every save under it is fenced: once the lock is lost, nothing more is written."""
        token = uuid.uuid4().hex
        ttl_ms = max(1000, int(ttl_seconds * 1000))
        keys = [self._key("lock", key), self._key("incident", key), self._key("resolving", key)]

        async def take() -> list[Any]:
            return list(await self._call(self._hold(keys=keys, args=[token, ttl_ms])))

        # Polled until taken or given up on; the last answer (not taken) is kept when giving up.
        reply: list[Any] = await AsyncRetrying(
            retry=retry_if_result(lambda answer: answer[0] != 1),
            wait=wait_fixed(LOCK_POLL_SECONDS),
            stop=stop_after_delay(ttl_seconds + 1),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else [0],
        )(take)
        won = reply[0] == 1
        incident = Incident.from_record(reply[1]) if won and reply[1] is not None else None
        held = Hold(won=won, incident=incident, token=token if won else "", resolving=won and reply[2] == 1)
        if not won:
            yield held
            return
        lock = self._key("lock", key)
        renew = lambda: self._call(self._renew(keys=[lock], args=[token, ttl_ms]))  # noqa: E731
        renewing = asyncio.create_task(keep_renewed(renew, key, held, ttl_ms))
        try:
            yield held
        except asyncio.CancelledError:  # stopped (a shutdown): what was decided so far is kept, as on a normal exit
            renewing.cancel()
            await self._release(key, held, held.save_on_release)
            raise
        except BaseException:
            renewing.cancel()
            await self._release(key, held, None)
            raise
        renewing.cancel()
        await self._release(key, held, held.save_on_release)

    async def _release(self, key: str, held: Hold, incident: Incident | None) -> None:
        """Save the incident (if any) and release the lock, in one fenced step; a release that fails is logged
        only (the lock ends with its TTL), a save that fails raises StateUnavailableError."""
        try:
            written = await self._write(key, incident, held.token, release=True)
        except StateUnavailableError as error:
            if incident is not None:
                raise
            log_event(logger, logging.WARNING, "lock_release_failed", incident=key, error=str(error))
            return
        if not written:
            held.lost = True
            log_event(logger, logging.ERROR, "lock_lost_before_release", incident=key, saved=incident is not None)

    async def _write(self, key: str, incident: Incident | None, token: str, *, release: bool) -> bool:
        """Save (and with `release` unlock) fenced by the token. The read copy follows a save that Redis took, while
        the lock is still this replica's: so a save then its copy, then the release. A copy never fails the write."""
        if incident is None or self.copies is None:
            return await self._save_fenced(key, incident, token, release=release)
        written = await self._save_fenced(key, incident, token, release=False)
        if written:
            await self.copies.copy(incident)
        if written and release:
            written = await self._save_fenced(key, None, token, release=True)
        return written

    async def _save_fenced(self, key: str, incident: Incident | None, token: str, *, release: bool) -> bool:
        keys = [self._key("incident", key), self._key("timers"), self._key("lock", key)]
        due = incident.due_at() if incident is not None else None
        ttl = self.closed_seconds if incident is not None and incident.closed else self.retention_seconds
        args: list[str | int | float] = [
            incident.to_record() if incident is not None else "",
            due.timestamp() if due is not None else "",
            max(1, ttl),
            key,
            token,
            "1" if release else "0",
        ]
        return bool(await self._call(self._save_release(keys=keys, args=args)))

    async def open(self) -> None:
        """Nothing to open (Redis connects on first use)."""

    async def ping(self) -> None:
        """Raise StateUnavailableError when Redis does not answer a PING sent after this call; the calls made
        while one PING is on its way share the next."""
        await self._pings.submit(None)

    async def _ping_batch(self, callers: list[None]) -> list[None]:
        await self._call(self.redis.ping())
        return [None] * len(callers)

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        raw = await self._call(self.redis.get(self._key("incident", key)))
        return Incident.from_record(raw) if raw is not None else None

    async def save(self, incident: Incident, held: Hold | None = None) -> None:
        """Store the incident and its timer, in one step; under a hold, only while its lock still holds
        (LockLostError otherwise)."""
        token = held.token if held is not None else ""
        if not await self._write(incident.key, incident, token, release=False):
            assert held is not None
            held.lost = True
            raise LockLostError(f"lock of {incident.key} lost: not saved")

    async def due_timers(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents with a timer due by `at` (the engine re-checks each under its lock)."""
        index = self._key("timers")
        raw_keys = await self._call(self.redis.zrangebyscore(index, "-inf", at.timestamp()))
        if not raw_keys:
            return []
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in raw_keys]
        stored = await self._call(self.redis.mget([self._key("incident", key) for key in keys]))
        expired = [key for key, raw in zip(keys, stored, strict=True) if raw is None]
        if expired:
            await self._call(self.redis.zrem(index, *expired))  # their incidents expired: drop them from the index
        incidents = [Incident.from_record(raw) for raw in stored if raw is not None]
        return [incident for incident in incidents if incident.due_at() is not None]

    async def forget_closed(self, before: dt.datetime) -> None:
        """Closed incidents expire by themselves (TTL: closed_seconds); their readable copies are pruned."""
        if self.copies is not None:
            await self.copies.reads.forget_closed(before)

    async def catch_up(self) -> int:
        """Copy again the incidents whose read copy is behind Redis (remediator/state/read_copy.py)."""
        return await self.copies.catch_up(self.hold) if self.copies is not None else 0

    async def mark_resolving(self, key: str) -> None:
        """Note, before waiting for the lock, that a resolve of this incident was accepted: whoever holds the
        lock next (a timer, a firing copy, another replica) acts no more."""
        await self._call(self.redis.set(self._key("resolving", key), "1", ex=max(1, self.closed_seconds)))

    async def resolve_pending(self, key: str) -> bool:
        """Whether any replica accepted a resolve of this incident (its resolving mark is set)."""
        return bool(await self._call(self.redis.exists(self._key("resolving", key))))

    async def admit(self, admission: Admission, consume: bool) -> Denial | None:
        """Check circuit, cooldown, rate and budget in one script; with consume take all or none, the half-open
        breaker's one trial included."""
        keys = [
            self._key("cooldown", admission.target),
            self._key("bucket", admission.rule),
            self._key("budget"),
            self._key("breaker", admission.breaker),
        ]
        claimant = f"{admission.claimant}:{uuid.uuid4().hex}"
        args: list[str | int | float] = [
            admission.cooldown_seconds * 1000,
            admission.rate.burst,
            admission.rate.per_minute,
            admission.actions_per_hour,
            claimant,
            "1" if consume else "0",
            admission.breaker_open_seconds * 1000,
            admission.trial_seconds * 1000,
        ]
        answer = await self._call(self._admit(keys=keys, args=args))
        verdict = answer.decode() if isinstance(answer, bytes) else str(answer)
        return None if verdict == "ok" else Denial(verdict)

    async def record_outcome(self, breaker: str, ok: bool, policy: BreakerPolicy) -> bool:
        """Record an outcome; return whether the circuit is now open."""
        keys = [self._key("breaker", breaker)]
        args: list[str | int | float] = ["1" if ok else "0", policy.failures, policy.open_seconds * 1000]
        return bool(await self._call(self._breaker_record(keys=keys, args=args)))

    async def budget_remaining(self, actions_per_hour: int) -> int:
        """Actions left in the trailing hour, across replicas."""
        return int(await self._call(self._budget(keys=[self._key("budget")], args=[actions_per_hour])))

    async def limits_left(self, query: LimitsQuery) -> LimitsLeft:
        """What is left of the limits across replicas, timed by Redis' clock: read-only commands only (SCAN,
        PTTL, HMGET, ZCOUNT, TIME), so a read never prunes, claims or extends anything. Not one atomic snapshot:
        each figure is as Redis had it a moment apart."""
        seconds, micros = await self._call(self.redis.time())
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        cooldowns, more_cooldowns = await self._call(scan_names(self.redis, self._key("cooldown", "")))
        breakers, more_breakers = await self._call(scan_names(self.redis, self._key("breaker", "")))
        pipe = self.redis.pipeline(transaction=False)
        for key in cooldowns:
            pipe.pttl(self._key("cooldown", key))
        for key in breakers:
            pipe.hmget(self._key("breaker", key), "failures", "opened_at", "trial_until")
        for wanted in query.rules:
            pipe.hmget(self._key("bucket", wanted.rule), "tokens", "updated")
        pipe.zcount(self._key("budget"), f"({now_ms - 3_600_000}", "+inf")
        answers: list[Any] = await self._call(pipe.execute())
        split = len(cooldowns) + len(breakers)
        ttls = dict(zip(cooldowns, answers[: len(cooldowns)], strict=True))
        kept = dict(zip(breakers, answers[len(cooldowns) : split], strict=True))
        rules = tuple(
            rule_left(wanted, bucket, ttls, kept, now_ms, query.breaker_open_seconds)
            for wanted, bucket in zip(query.rules, answers[split:-1], strict=True)
        )
        budget = max(0, query.actions_per_hour - int(answers[-1]))
        return LimitsLeft(epoch(now_ms / 1000), budget, rules, more_cooldowns or more_breakers)

    async def prune(self, older_than: dt.datetime) -> None:
        """Incidents expire by themselves (TTL = the retention, renewed on every save)."""

    async def close(self) -> None:
        """Close the connection pool once the PING on its way is answered."""
        await self._pings.wait_idle()
        await self.redis.aclose()


async def keep_renewed(renew: Callable[[], Awaitable[Any]], key: str, held: Hold, ttl_ms: int) -> None:
    """Extend the lock (`renew`: the fenced RENEW call) every third of its TTL until cancelled; mark the hold lost
    when it was."""
    while True:
        await asyncio.sleep(ttl_ms / 3000)
        try:
            renewed = await renew()
        except StateUnavailableError as error:
            log_event(logger, logging.WARNING, "lock_renew_failed", incident=key, error=str(error))
            continue  # the lock may still hold; the fenced writes find out
        if not renewed:
            held.lost = True
            log_event(logger, logging.ERROR, "lock_lost", incident=key)
            return


def rule_left(
    wanted: RuleLimits,
    bucket: list[Any],
    ttls: dict[str, Any],
    kept: dict[str, list[Any]],
    now_ms: int,
    open_seconds: float,
) -> RuleLeft:
    """One rule's limits left, from what Redis answered: its bucket (tokens, updated), the cooldown keys' PTTLs
    and the breaker hashes (failures, opened_at, trial_until), all times in Redis' milliseconds."""
    burst = wanted.rate.burst
    tokens, updated = bucket
    level = float(burst)
    if tokens is not None and updated is not None:
        refill = max(0, now_ms - float(updated)) * wanted.rate.per_minute / 60000
        level = min(float(burst), float(tokens) + refill)
    running = tuple(
        CooldownLeft(target, epoch((now_ms + int(ttl)) / 1000))
        for target, ttl in sorted(ttls.items())
        if int(ttl) > 0 and wanted.cooldown_seconds > 0 and wanted.targets.fullmatch(target)
    )
    prefix = f"{wanted.rule}:"
    breakers = tuple(
        breaker_left(
            name.removeprefix(prefix),
            int(failures or 0),
            float(opened) / 1000 if opened is not None else None,
            float(trial) / 1000 if trial is not None else None,
            now_ms / 1000,
            open_seconds,
        )
        for name, (failures, opened, trial) in sorted(kept.items())
        if name.startswith(prefix) and (failures is not None or opened is not None)  # not gone since the scan
    )
    return RuleLeft(wanted.rule, level, burst, running, breakers)


async def scan_names(redis: Redis, head: str) -> tuple[list[str], bool]:
    """The names of the keys under `head` (bounded: SCAN_ROUNDS calls) and whether more were left unread."""
    match = re.sub(r"([*?\[\]\\])", r"\\\1", head) + "*"
    names: set[str] = set()
    cursor = 0
    for _ in range(SCAN_ROUNDS):
        cursor, keys = await redis.scan(cursor, match=match, count=SCAN_COUNT)
        names |= {(k.decode() if isinstance(k, bytes) else str(k))[len(head) :] for k in keys}
        if cursor == 0:
            return sorted(names), False
    return sorted(names), True
