"""The memory state backend (one replica): the limits (buckets, the hourly budget, cooldowns, breakers) are read
from this process' memory and written through to a SQLite file of their own, so a restart forgets none of
them; incidents live in the audit store's table.

Every check-and-update runs synchronously, with no await between the check, the SQLite commit and the update of
the in-memory copy, so it is atomic on the event loop. A claim is committed (WAL, synchronous=FULL: see
docs/configuration.md) before admit() returns, so an action never runs on a claim a crash could forget. Times are
wall-clock seconds (a restart loses the monotonic clock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from remediator.config import RateLimit
from remediator.runtime.locks import KeyedLocks
from remediator.state.base import (
    Admission,
    BreakerPolicy,
    CooldownLeft,
    Denial,
    Hold,
    IncidentStore,
    LimitsLeft,
    LimitsQuery,
    RuleLeft,
    StateUnavailableError,
    breaker_left,
    epoch,
)
from remediator.state.incident import Incident

BUDGET_WINDOW_SECONDS = 3600.0
SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;  -- every claim's commit is on disk before the action runs: docs/configuration.md
CREATE TABLE IF NOT EXISTS buckets (
    rule TEXT PRIMARY KEY,
    per_minute REAL NOT NULL,
    burst INTEGER NOT NULL,
    tokens REAL NOT NULL,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spent (at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS spent_at ON spent (at);
CREATE TABLE IF NOT EXISTS cooldowns (target TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breakers (
    breaker TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    opened_at REAL,
    trial_until REAL
) WITHOUT ROWID;
"""


@dataclass
class TokenBucket:
    """`burst` tokens, refilled at `per_minute`; `tokens` as of `updated` (wall-clock seconds)."""

    rate: RateLimit
    tokens: float
    updated: float

    def level(self, at: float) -> float:
        """The tokens in the bucket at `at` (a clock that went back refills nothing)."""
        refill = max(0.0, at - self.updated) * self.rate.per_minute / 60
        return min(float(self.rate.burst), self.tokens + refill)


@dataclass
class CircuitBreaker:
    """Opens after `failures` consecutive failures; after `open_seconds` it is half-open and lets one trial run
    at a time (until `trial_until`, the trial's lease)."""

    failures: int = 0
    opened_at: float | None = None
    trial_until: float | None = None

    def admits(self, at: float, open_seconds: float) -> tuple[bool, bool]:
        """Return whether an action may run now, and whether running it takes the half-open trial."""
        if self.opened_at is None:
            return True, False
        if at - self.opened_at < open_seconds:
            return False, False
        if self.trial_until is not None and at < self.trial_until:
            return False, False  # a trial is running (its lease has not ended)
        return True, True

    def after(self, ok: bool, at: float, policy: BreakerPolicy) -> CircuitBreaker:
        """The breaker once an action's outcome is recorded: a success closes it; a failure counts, and opens it
        at the threshold or when it was open (a failed trial opens it for another period)."""
        if ok:
            return CircuitBreaker()
        failures = self.failures + 1
        if failures >= policy.failures or self.opened_at is not None:
            return CircuitBreaker(failures, at, None)
        return CircuitBreaker(failures)


@dataclass
class MemoryState:
    """All policy state of one remediator process, kept across config reloads and (in the SQLite file at
    `path`) across restarts. It opens the file on first use if open() was not called."""

    incidents: IncidentStore
    path: Path | str = ":memory:"
    clock: Callable[[], float] = time.time
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    spent: deque[float] = field(default_factory=deque)
    cooldowns: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    resolving: set[str] = field(default_factory=set)
    _db: sqlite3.Connection | None = field(default=None, init=False, repr=False)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, ttl_seconds: float) -> AsyncIterator[Hold]:
        """Serialise work on one incident in this process (the TTL matters only across processes)."""
        async with self.locks.hold(key):
            held = Hold(won=True, incident=await self.incidents.incident(key), resolving=key in self.resolving)
            yield held
            if held.save_on_release is not None:
                await self.incidents.save(held.save_on_release)
            final = held.save_on_release or held.incident
            if final is not None and final.closed:
                self.resolving.discard(key)  # the tombstone is on record: it answers from now on

    async def open(self) -> None:
        """Open the state file (created if missing) and load what it remembers; raise StateUnavailableError when
        it cannot be opened."""
        self._connection()

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if str(self.path) != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.executescript(SCHEMA)
            self._load(db)
        except (sqlite3.Error, OSError) as error:
            raise StateUnavailableError(f"state file {self.path} unavailable: {error}") from error
        self._db = db
        return db

    def _load(self, db: sqlite3.Connection) -> None:
        cutoff = self.clock() - BUDGET_WINDOW_SECONDS
        db.execute("DELETE FROM spent WHERE at < ?", (cutoff,))
        self.buckets = {
            rule: TokenBucket(RateLimit(per_minute=per_minute, burst=burst), tokens, updated)
            for rule, per_minute, burst, tokens, updated in db.execute("SELECT * FROM buckets")
        }
        self.spent = deque(at for (at,) in db.execute("SELECT at FROM spent ORDER BY at"))
        self.cooldowns = dict(db.execute("SELECT target, at FROM cooldowns"))
        self.breakers = {
            name: CircuitBreaker(failures, opened_at, trial_until)
            for name, failures, opened_at, trial_until in db.execute("SELECT * FROM breakers")
        }

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction (durable when this returns) or none; a failure is StateUnavailableError."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise StateUnavailableError(f"state file {self.path} cannot be written: {error}") from error

    async def ping(self) -> None:
        """The memory backend is reachable once its file is open."""
        self._connection()

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        return await self.incidents.incident(key)

    async def save(self, incident: Incident, held: Hold | None = None) -> None:
        """Insert or update an incident (in one process a hold cannot be lost)."""
        await self.incidents.save(incident)

    async def due_timers(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents with a timer due by `at`."""
        return await self.incidents.due_timers(at)

    async def forget_closed(self, before: dt.datetime) -> None:
        """Forget resolved incidents closed before `before`."""
        await self.incidents.forget_closed(before)

    async def catch_up(self) -> int:
        """Nothing to catch up: the incidents are kept in the audit store itself."""
        return 0

    async def mark_resolving(self, key: str) -> None:
        """Note, before waiting for the lock, that a resolve of this incident was accepted (in this process; after
        a restart the resolve, still pending in the inbox, closes the incident before anything else can act)."""
        self.resolving.add(key)

    async def resolve_pending(self, key: str) -> bool:
        """Whether a resolve of this incident was accepted in this process and has not closed it yet."""
        return key in self.resolving

    def _remaining(self, actions_per_hour: int, at: float) -> int:
        cutoff = at - BUDGET_WINDOW_SECONDS
        while self.spent and self.spent[0] < cutoff:
            self.spent.popleft()
        return max(0, actions_per_hour - len(self.spent))

    async def admit(self, admission: Admission, consume: bool) -> Denial | None:
        """Check circuit, cooldown, rate and budget; with consume take all, the half-open trial included, and
        commit the claim before returning (no await in between: atomic)."""
        self._connection()
        at = self.clock()
        breaker = self.breakers.get(admission.breaker, CircuitBreaker())
        allowed, takes_trial = breaker.admits(at, admission.breaker_open_seconds)
        if not allowed:
            return Denial.CIRCUIT
        last = self.cooldowns.get(admission.target)
        if last is not None and at - last < admission.cooldown_seconds:
            return Denial.COOLDOWN
        bucket = self.buckets.get(admission.rule)
        if bucket is None or bucket.rate != admission.rate:
            bucket = TokenBucket(admission.rate, float(admission.rate.burst), at)
        tokens = bucket.level(at)
        if consume and tokens < 1:
            return Denial.RATE
        if self._remaining(admission.actions_per_hour, at) <= 0:
            return Denial.BUDGET
        if not consume:
            return None
        claimed = TokenBucket(admission.rate, tokens - 1, at)
        trial = CircuitBreaker(breaker.failures, breaker.opened_at, at + admission.trial_seconds)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO buckets VALUES (?, ?, ?, ?, ?)",
                (admission.rule, admission.rate.per_minute, admission.rate.burst, claimed.tokens, at),
            )
            db.execute("DELETE FROM spent WHERE at < ?", (at - BUDGET_WINDOW_SECONDS,))
            db.execute("INSERT INTO spent VALUES (?)", (at,))
            db.execute("INSERT OR REPLACE INTO cooldowns VALUES (?, ?)", (admission.target, at))
            if takes_trial:
                db.execute(
                    "INSERT OR REPLACE INTO breakers VALUES (?, ?, ?, ?)",
                    (admission.breaker, trial.failures, trial.opened_at, trial.trial_until),
                )
        self.buckets[admission.rule] = claimed
        self.spent.append(at)
        self.cooldowns[admission.target] = at
        if takes_trial:
            self.breakers[admission.breaker] = trial
        return None

    async def record_outcome(self, breaker: str, ok: bool, policy: BreakerPolicy) -> bool:
        """Record an outcome (committed before returning); return whether the circuit is now open."""
        self._connection()
        at = self.clock()
        current = self.breakers.get(breaker, CircuitBreaker())
        updated = current.after(ok, at, policy)
        if updated != current:
            with self._transaction() as db:
                if updated == CircuitBreaker():
                    db.execute("DELETE FROM breakers WHERE breaker = ?", (breaker,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO breakers VALUES (?, ?, ?, ?)",
                        (breaker, updated.failures, updated.opened_at, updated.trial_until),
                    )
            if updated == CircuitBreaker():
                self.breakers.pop(breaker, None)
            else:
                self.breakers[breaker] = updated
        return updated.opened_at is not None

    async def budget_remaining(self, actions_per_hour: int) -> int:
        """Actions left in the trailing hour."""
        self._connection()
        return self._remaining(actions_per_hour, self.clock())

    async def limits_left(self, query: LimitsQuery) -> LimitsLeft:
        """What is left of the limits, from the copy of the state file this process keeps (written through on
        every claim and outcome); it reads only, as admit() would judge at this moment."""
        self._connection()
        at = self.clock()
        spent = sum(1 for t in self.spent if t >= at - BUDGET_WINDOW_SECONDS)
        longest = max((wanted.cooldown_seconds for wanted in query.rules), default=0.0)
        running = sorted((target, last) for target, last in self.cooldowns.items() if at - last < longest)
        rules = []
        for wanted in query.rules:
            bucket = self.buckets.get(wanted.rule)
            same = bucket is not None and bucket.rate == wanted.rate  # a changed rate starts a full bucket
            tokens = bucket.level(at) if bucket is not None and same else float(wanted.rate.burst)
            cooldowns = tuple(
                CooldownLeft(target, epoch(last + wanted.cooldown_seconds))
                for target, last in running
                if at - last < wanted.cooldown_seconds and wanted.targets.fullmatch(target)
            )
            prefix = f"{wanted.rule}:"
            breakers = tuple(
                breaker_left(
                    name.removeprefix(prefix), b.failures, b.opened_at, b.trial_until, at, query.breaker_open_seconds
                )
                for name, b in sorted(self.breakers.items())
                if name.startswith(prefix)
            )
            rules.append(RuleLeft(wanted.rule, tokens, wanted.rate.burst, cooldowns, breakers))
        return LimitsLeft(epoch(at), max(0, query.actions_per_hour - spent), tuple(rules))

    async def prune(self, older_than: dt.datetime) -> None:
        """Closed incidents are pruned with the audit store that keeps them."""

    async def close(self) -> None:
        """Close the state file (everything in it was committed as it happened)."""
        if self._db is not None:
            self._db.close()
            self._db = None
