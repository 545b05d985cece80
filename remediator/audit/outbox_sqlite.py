"""The escalation outbox's records in the embedded SQLite store (written through its group-commit writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from remediator.audit.reads import OUTBOX_COLUMNS
from remediator.escalation.records import ChannelStats, NewRecord, OutboxRecord

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    alertname TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    coalesced INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    delivered_at REAL,
    last_error TEXT
)""",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (channel, next_attempt_at) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS outbox_incident ON outbox (incident, channel)",
)
COLUMNS = "id, incident, channel, kind, alertname, reason, body, created_at, next_attempt_at, attempts, state"
# Triggers that may have reached the pager: delivered, tried, or being sent now (lease held).
REACHED = (
    "SELECT count(*) FROM outbox WHERE incident = ? AND channel = ? AND kind = 'trigger' "
    "AND (state = 'delivered' OR attempts > 0 OR (state = 'pending' AND lease_until > ?))"
)

Run = Callable[..., Awaitable[Any]]
Read = Callable[[str, tuple[Any, ...]], list[Any]]


class SqliteOutbox:
    """Outbox records in the SQLite audit database: writes go through the store's group-commit writer."""

    def __init__(self, db: sqlite3.Connection, run: Run, read: Read) -> None:
        self._db = db
        self._run = run
        self._read = read

    async def prepare(self) -> None:
        """Create the table if needed."""

        def _create() -> None:
            for statement in SCHEMA:
                self._db.execute(statement)

        await self._run(_create)

    async def add(self, records: Sequence[NewRecord]) -> None:
        """Record them in one transaction; a resolve cancels what it makes moot (see OutboxStore.add)."""
        await self._run(self._add, records)

    def _add(self, records: Sequence[NewRecord]) -> None:
        for record in records:
            state = "pending"
            if record.kind == "resolve":
                at = record.created_at
                (triggers,) = self._db.execute(
                    "SELECT count(*) FROM outbox WHERE incident = ? AND channel = ? AND kind = 'trigger'",
                    (record.incident, record.channel),
                ).fetchone()
                (reached,) = self._db.execute(REACHED, (record.incident, record.channel, at)).fetchone()
                self._db.execute(
                    "UPDATE outbox SET state = 'cancelled' WHERE incident = ? AND channel = ? AND kind = 'trigger' "
                    "AND state = 'pending' AND (lease_until IS NULL OR lease_until <= ?)",
                    (record.incident, record.channel, at),
                )
                if triggers and not reached:
                    state = "superseded"  # no page went out: nothing to resolve
            self._db.execute(
                "INSERT INTO outbox (incident, channel, kind, alertname, reason, body, created_at, next_attempt_at, "
                "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.incident,
                    record.channel,
                    record.kind,
                    record.alertname,
                    record.reason,
                    record.body,
                    record.created_at,
                    record.created_at,
                    state,
                ),
            )

    async def release_leases(self, owner: str) -> None:
        """Free the leases `owner` holds."""
        await self._run(
            lambda: self._db.execute(
                "UPDATE outbox SET lease_until = NULL WHERE lease_owner = ? AND lease_until IS NOT NULL", (owner,)
            )
        )

    async def claim(self, channel: str, owner: str, at: float, lease_until: float, limit: int) -> list[OutboxRecord]:
        """Lease up to `limit` due pending records of the channel that nobody holds, oldest first."""

        def _claim() -> list[Any]:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM outbox WHERE channel = ? AND state = 'pending' AND next_attempt_at <= ? "  # noqa: S608
                "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ?",
                (channel, at, at, limit),
            ).fetchall()
            self._db.executemany(
                "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ?",
                [(owner, lease_until, row[0]) for row in rows],
            )
            return rows

        return [OutboxRecord(*row) for row in await self._run(_claim)]

    async def delivered(self, ids: Sequence[int], owner: str, at: float, coalesced: bool) -> None:
        """Mark these leased records delivered and free their lease."""
        await self._run(
            lambda: self._db.executemany(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, lease_until = NULL, "
                "delivered_at = ?, coalesced = ?, last_error = NULL WHERE id = ? AND lease_owner = ?",
                [(at, int(coalesced), record_id, owner) for record_id in ids],
            )
        )

    async def failed(self, retry_at: Mapping[int, float], owner: str, error: str) -> None:
        """Count a failed attempt; retry, or cancel a trigger a newer resolve has made moot."""
        await self._run(
            lambda: self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, lease_until = NULL, next_attempt_at = ?, last_error = ?, "
                "state = CASE WHEN kind = 'trigger' AND EXISTS (SELECT 1 FROM outbox AS r WHERE r.incident = "
                "outbox.incident AND r.channel = outbox.channel AND r.kind = 'resolve' AND r.id > outbox.id) "
                "THEN 'cancelled' ELSE state END WHERE id = ? AND lease_owner = ? AND state = 'pending'",
                [(at, error[:500], record_id, owner) for record_id, at in retry_at.items()],
            )
        )

    async def release(self, ids: Sequence[int], owner: str) -> None:
        """Free leases taken but not attempted."""
        await self._run(
            lambda: self._db.executemany(
                "UPDATE outbox SET lease_until = NULL WHERE id = ? AND lease_owner = ?",
                [(record_id, owner) for record_id in ids],
            )
        )

    async def stats(self) -> dict[str, ChannelStats]:
        """Pending records per channel."""
        rows = self._read(
            "SELECT channel, count(*), min(created_at) FROM outbox WHERE state = 'pending' GROUP BY channel", ()
        )
        return {row[0]: ChannelStats(row[1], row[2]) for row in rows}

    async def prune(self, before: float) -> None:
        """Delete finished records created before this time."""
        await self._run(
            lambda: self._db.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (before,))
        )

    async def records_of(self, incident: str) -> list[dict[str, Any]]:
        """Every record (page or its resolve) of one incident, oldest first, with how its delivery went."""
        rows = self._read(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE incident = ? ORDER BY id",  # noqa: S608
            (incident,),
        )
        records = [dict(zip(OUTBOX_COLUMNS, row, strict=True)) for row in rows]
        for record in records:
            record["coalesced"] = bool(record["coalesced"])
        return records
