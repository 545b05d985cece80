"""The escalation outbox's records in the PostgreSQL audit store, shared by replicas: a sender leases the
records it sends (FOR UPDATE SKIP LOCKED, with an expiry), so a replica that dies mid-send leaves them to the
others once its lease runs out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from remediator.audit.reads import OUTBOX_COLUMNS
from remediator.escalation.records import ChannelStats, NewRecord, OutboxRecord

T = TypeVar("T")
Call = Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]

SCHEMA = """
CREATE TABLE IF NOT EXISTS tradeops_escalation_outbox (
    id BIGSERIAL PRIMARY KEY,
    incident TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    alertname TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    coalesced BOOLEAN NOT NULL DEFAULT false,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    delivered_at DOUBLE PRECISION,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS tradeops_escalation_outbox_due ON tradeops_escalation_outbox (channel, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS tradeops_escalation_outbox_incident ON tradeops_escalation_outbox (incident, channel);
"""
SCHEMA_LOCK = 0x7472_6164_656F_7078  # replicas starting together create the table once
COLUMNS = "id, incident, channel, kind, alertname, reason, body, created_at, next_attempt_at, attempts, state"
CLAIM = f"""
UPDATE tradeops_escalation_outbox SET lease_owner = $2, lease_until = $4
WHERE id IN (
    SELECT id FROM tradeops_escalation_outbox
    WHERE channel = $1 AND state = 'pending' AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
    ORDER BY id LIMIT $5
    FOR UPDATE SKIP LOCKED
)
RETURNING {COLUMNS}
"""  # noqa: S608 - constant column list
FAILED = """
UPDATE tradeops_escalation_outbox AS o SET attempts = attempts + 1, lease_until = NULL, next_attempt_at = f.at,
    last_error = $3,
    state = CASE WHEN o.kind = 'trigger' AND EXISTS (
        SELECT 1 FROM tradeops_escalation_outbox AS r
        WHERE r.incident = o.incident AND r.channel = o.channel AND r.kind = 'resolve' AND r.id > o.id
    ) THEN 'cancelled' ELSE o.state END
FROM unnest($1::bigint[], $2::double precision[]) AS f(id, at)
WHERE o.id = f.id AND o.lease_owner = $4 AND o.state = 'pending'
"""


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL."""
    return value.replace("\x00", "\\x00")


class PostgresOutbox:
    """Outbox records in PostgreSQL, through the audit store's pool (`call` maps failures to
    AuditUnavailableError)."""

    def __init__(self, call: Call) -> None:
        self._call = call

    async def prepare(self) -> None:
        """Create the table if needed (once, under an advisory lock)."""

        async def _create(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await connection.execute(SCHEMA)

        await self._call(_create)

    async def add(self, records: Sequence[NewRecord]) -> None:
        """Record them in one transaction; a resolve cancels what it makes moot (see OutboxStore.add)."""

        async def _add(connection: asyncpg.Connection) -> None:
            async with connection.transaction():
                for record in records:
                    state = "pending"
                    if record.kind == "resolve":
                        state = await _resolve_state(connection, record)
                    await connection.execute(
                        "INSERT INTO tradeops_escalation_outbox (incident, channel, kind, alertname, reason, body, "
                        "created_at, next_attempt_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
                        record.incident,
                        record.channel,
                        record.kind,
                        _text(record.alertname),
                        _text(record.reason),
                        _text(record.body),
                        record.created_at,
                        state,
                    )

        await self._call(_add)

    async def release_leases(self, owner: str) -> None:
        """Free the leases `owner` holds."""
        await self._call(
            lambda c: c.execute(
                "UPDATE tradeops_escalation_outbox SET lease_until = NULL "
                "WHERE lease_owner = $1 AND lease_until IS NOT NULL AND state = 'pending'",
                owner,
            )
        )

    async def claim(self, channel: str, owner: str, at: float, lease_until: float, limit: int) -> list[OutboxRecord]:
        """Lease up to `limit` due pending records of the channel that no replica holds, oldest first."""
        rows = await self._call(lambda c: c.fetch(CLAIM, channel, owner, at, lease_until, limit))
        return sorted((OutboxRecord(*row.values()) for row in rows), key=lambda record: record.id)

    async def delivered(self, ids: Sequence[int], owner: str, at: float, coalesced: bool) -> None:
        """Mark these leased records delivered and free their lease."""
        await self._call(
            lambda c: c.execute(
                "UPDATE tradeops_escalation_outbox SET state = 'delivered', attempts = attempts + 1, "
                "lease_until = NULL, delivered_at = $3, coalesced = $4, last_error = NULL "
                "WHERE id = ANY($1::bigint[]) AND lease_owner = $2",
                list(ids),
                owner,
                at,
                coalesced,
            )
        )

    async def failed(self, retry_at: Mapping[int, float], owner: str, error: str) -> None:
        """Count a failed attempt; retry, or cancel a trigger a newer resolve has made moot."""
        await self._call(
            lambda c: c.execute(FAILED, list(retry_at), list(retry_at.values()), _text(error[:500]), owner)
        )

    async def release(self, ids: Sequence[int], owner: str) -> None:
        """Free leases taken but not attempted."""
        await self._call(
            lambda c: c.execute(
                "UPDATE tradeops_escalation_outbox SET lease_until = NULL "
                "WHERE id = ANY($1::bigint[]) AND lease_owner = $2",
                list(ids),
                owner,
            )
        )

    async def stats(self) -> dict[str, ChannelStats]:
        """Pending records per channel (all replicas')."""
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT channel, count(*) AS n, min(created_at) AS oldest FROM tradeops_escalation_outbox "
                "WHERE state = 'pending' GROUP BY channel"
            )
        )
        return {row["channel"]: ChannelStats(row["n"], row["oldest"]) for row in rows}

    async def prune(self, before: float) -> None:
        """Delete finished records created before this time."""
        await self._call(
            lambda c: c.execute(
                "DELETE FROM tradeops_escalation_outbox WHERE state != 'pending' AND created_at < $1", before
            )
        )

    async def records_of(self, incident: str) -> list[dict[str, Any]]:
        """Every record (page or its resolve) of one incident, oldest first, with how its delivery went."""
        rows = await self._call(
            lambda c: c.fetch(
                f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM tradeops_escalation_outbox "  # noqa: S608
                "WHERE incident = $1 ORDER BY id",
                incident,
            )
        )
        return [dict(row) for row in rows]


async def _resolve_state(connection: asyncpg.Connection, record: NewRecord) -> str:
    """Cancel the triggers a resolve makes moot; return the resolve's own state."""
    row = await connection.fetchrow(
        "SELECT count(*) AS triggers, count(*) FILTER (WHERE state = 'delivered' OR attempts > 0 "
        "OR (state = 'pending' AND lease_until > $3)) AS reached "
        "FROM tradeops_escalation_outbox WHERE incident = $1 AND channel = $2 AND kind = 'trigger'",
        record.incident,
        record.channel,
        record.created_at,
    )
    await connection.execute(
        "UPDATE tradeops_escalation_outbox SET state = 'cancelled' WHERE incident = $1 AND channel = $2 "
        "AND kind = 'trigger' AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3)",
        record.incident,
        record.channel,
        record.created_at,
    )
    assert row is not None  # an aggregate always returns its row
    return "superseded" if row["triggers"] and not row["reached"] else "pending"
