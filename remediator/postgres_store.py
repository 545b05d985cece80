"""The PostgreSQL audit store: audit trail, inbox and incidents shared by replicas (asyncpg)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from remediator.incident import Incident, now
from remediator.payload import WebhookAlert
from remediator.state import AuditUnavailableError

T = TypeVar("T")

# JSON is kept as TEXT: JSONB cannot hold the \\u0000 escape a hostile label may carry, and one such alert
# must not make every webhook call fail.
SCHEMA = """
CREATE TABLE IF NOT EXISTS tradeops_audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    replica TEXT NOT NULL,
    incident TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    rule TEXT,
    decision TEXT,
    detail TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tradeops_audit_at ON tradeops_audit (at);
CREATE INDEX IF NOT EXISTS tradeops_audit_incident ON tradeops_audit (incident, id);
CREATE TABLE IF NOT EXISTS tradeops_inbox (
    id BIGSERIAL PRIMARY KEY,
    replica TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    alert TEXT NOT NULL,
    done BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS tradeops_inbox_pending ON tradeops_inbox (replica, id) WHERE NOT done;
CREATE TABLE IF NOT EXISTS tradeops_incidents (
    key TEXT PRIMARY KEY,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    rule TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TIMESTAMPTZ,
    escalate_at TIMESTAMPTZ,
    escalated BOOLEAN NOT NULL DEFAULT false,
    escalation_reason TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS tradeops_incidents_escalate ON tradeops_incidents (escalate_at)
    WHERE state = 'open' AND NOT escalated;
"""
SCHEMA_LOCK = 0x7472_6164_656F_7073  # "tradeops": replicas starting together create the schema once
AUDIT_INSERT = (
    "INSERT INTO tradeops_audit (at, replica, incident, alertname, status, event, rule, decision, detail, labels) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)


class PostgresStore:
    """Audit store in PostgreSQL; every failure to reach it is an AuditUnavailableError."""

    def __init__(self, dsn: str, replica: str, pool_size: int, timeout_seconds: float) -> None:
        self._dsn = dsn
        self.replica = replica
        self._pool_size = pool_size
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Open the pool and create the schema (once, under an advisory lock); raise AuditUnavailableError."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._timeout,
                command_timeout=self._timeout,
            )
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await connection.execute(SCHEMA)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise AuditUnavailableError(f"PostgreSQL audit store unavailable: {error}") from error

    async def _call(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            raise AuditUnavailableError("PostgreSQL audit store is not open")
        try:
            async with self._pool.acquire() as connection:
                return await operation(connection)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise AuditUnavailableError(f"PostgreSQL audit store unavailable: {error}") from error

    async def receive(self, alerts: list[WebhookAlert]) -> list[int]:
        """Record received alerts in the inbox and the audit trail, in one transaction; return inbox ids."""
        stamp = now()

        async def _receive(connection: asyncpg.Connection) -> list[int]:
            async with connection.transaction():
                rows = await connection.fetch(
                    "INSERT INTO tradeops_inbox (replica, received_at, alert) "
                    "SELECT $1, $2, a FROM unnest($3::text[]) WITH ORDINALITY AS t(a, n) ORDER BY n RETURNING id",
                    self.replica,
                    stamp,
                    [alert.model_dump_json() for alert in alerts],
                )
                await connection.executemany(
                    AUDIT_INSERT,
                    [_received_row(stamp, self.replica, a) for a in alerts],
                )
            return sorted(row["id"] for row in rows)

        return await self._call(_receive)

    async def pending(self) -> list[tuple[int, WebhookAlert]]:
        """Return this replica's unprocessed inbox entries, oldest first."""
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT id, alert FROM tradeops_inbox WHERE replica = $1 AND NOT done ORDER BY id",
                self.replica,
            )
        )
        return [(row["id"], WebhookAlert.model_validate_json(row["alert"])) for row in rows]

    async def done(self, inbox_id: int) -> None:
        """Mark an inbox entry processed."""
        await self._call(lambda c: c.execute("UPDATE tradeops_inbox SET done = true WHERE id = $1", inbox_id))

    async def audit(
        self, alert: WebhookAlert, event: str, rule: str | None = None, decision: str | None = None, detail: str = ""
    ) -> None:
        """Append one audit entry."""
        values = (now(), self.replica, alert.incident_key, _text(alert.name), alert.status, event, rule, decision)
        await self._call(lambda c: c.execute(AUDIT_INSERT, *values, _text(detail[:4000]), _labels(alert)))

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest audit entries first (all replicas)."""
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT id, at, replica, incident, alertname, status, event, rule, decision, detail, labels "
                "FROM tradeops_audit ORDER BY id DESC LIMIT $1",
                limit,
            )
        )
        entries = []
        for row in rows:
            entry = dict(row)
            entry["at"] = row["at"].isoformat()
            entry["labels"] = json.loads(row["labels"])
            entries.append(entry)
        return entries

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        row = await self._call(lambda c: c.fetchrow("SELECT * FROM tradeops_incidents WHERE key = $1", key))
        return _incident(row) if row else None

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""
        values = (
            incident.key,
            _text(incident.alertname),
            json.dumps(incident.labels, sort_keys=True),
            incident.rule,
            incident.state,
            incident.attempts,
            incident.last_attempt_at,
            incident.escalate_at,
            incident.escalated,
            _text(incident.escalation_reason or "") or None,
            now(),
        )
        await self._call(
            lambda c: c.execute(
                "INSERT INTO tradeops_incidents (key, alertname, labels, rule, state, attempts, last_attempt_at, "
                "escalate_at, escalated, escalation_reason, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT (key) DO UPDATE SET alertname = excluded.alertname, labels = excluded.labels, "
                "rule = excluded.rule, state = excluded.state, attempts = excluded.attempts, "
                "last_attempt_at = excluded.last_attempt_at, escalate_at = excluded.escalate_at, "
                "escalated = excluded.escalated, escalation_reason = excluded.escalation_reason, "
                "updated_at = excluded.updated_at",
                *values,
            )
        )

    async def due_escalations(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents whose escalation time has come."""
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT * FROM tradeops_incidents WHERE state = 'open' AND NOT escalated AND escalate_at <= $1", at
            )
        )
        return [_incident(row) for row in rows]

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete audit entries, processed inbox entries and closed incidents older than the retention."""

        async def _prune(connection: asyncpg.Connection) -> None:
            await connection.execute("DELETE FROM tradeops_audit WHERE at < $1", older_than)
            await connection.execute("DELETE FROM tradeops_inbox WHERE done AND received_at < $1", older_than)
            await connection.execute(
                "DELETE FROM tradeops_incidents WHERE state = 'closed' AND updated_at < $1", older_than
            )

        await self._call(_prune)

    async def close(self) -> None:
        """Close the pool once running queries have finished."""
        if self._pool is not None:
            await self._pool.close()


def _received_row(stamp: dt.datetime, replica: str, alert: WebhookAlert) -> tuple[Any, ...]:
    name = _text(alert.name)
    return (stamp, replica, alert.incident_key, name, alert.status, "received", None, None, "", _labels(alert))


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible instead of failing the write."""
    return value.replace("\x00", "\\x00")


def _labels(alert: WebhookAlert) -> str:
    return json.dumps(alert.labels, sort_keys=True)


def _incident(row: asyncpg.Record) -> Incident:
    return Incident(
        key=row["key"],
        alertname=row["alertname"],
        labels=json.loads(row["labels"]),
        rule=row["rule"],
        state=row["state"],
        attempts=row["attempts"],
        last_attempt_at=row["last_attempt_at"],
        escalate_at=row["escalate_at"],
        escalated=row["escalated"],
        escalation_reason=row["escalation_reason"],
    )
