"""The PostgreSQL audit store: audit trail, inbox and incidents shared by replicas (asyncpg)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from common.batcher import Batcher
from common.postgres import keep_session
from remediator.audit.outbox_postgres import PostgresOutbox
from remediator.audit.reads import AuditQuery, IncidentQuery, IncidentRow, utc
from remediator.audit.where import Dialect, audit_where, incident_where
from remediator.intake.inbox import unfinished
from remediator.intake.payload import WebhookAlert
from remediator.state.base import AuditEntry, AuditUnavailableError, Delivery
from remediator.state.incident import Incident, now

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
-- The inbox: each payload verbatim, never updated (replicas' workers would queue on its row); an alert is done
-- once its (delivery, idx) is in tradeops_delivered.
CREATE TABLE IF NOT EXISTS tradeops_deliveries (
    id BIGSERIAL PRIMARY KEY,
    replica TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    body BYTEA NOT NULL,
    alerts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tradeops_deliveries_replica ON tradeops_deliveries (replica, id);
CREATE INDEX IF NOT EXISTS tradeops_deliveries_received ON tradeops_deliveries (received_at);
CREATE TABLE IF NOT EXISTS tradeops_delivered (
    delivery BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (delivery, idx)
);
-- Incidents as Incident.to_record() JSON (TEXT), with the columns their queries need; closed ones are kept as
-- tombstones (resolution is final) until forget_closed().
CREATE TABLE IF NOT EXISTS tradeops_incident_records (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    due_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tradeops_incident_records_due ON tradeops_incident_records (due_at)
    WHERE due_at IS NOT NULL;
"""
SCHEMA_LOCK = 0x7472_6164_656F_7073  # "tradeops": replicas starting together create the schema once
# One statement, so atomic and one round trip: the audit entries, and the alerts marked done (at most once).
RECORD = """
WITH entries AS (
    INSERT INTO tradeops_audit (at, replica, incident, alertname, status, event, rule, decision, detail, labels)
    SELECT at, $1, incident, alertname, status, event, rule, decision, detail, labels
    FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[]) AS e(at, incident, alertname, status, event, rule, decision, detail, labels)
)
INSERT INTO tradeops_delivered (delivery, idx) SELECT * FROM unnest($11::bigint[], $12::integer[])
ON CONFLICT DO NOTHING
"""
# Payloads of one batch in one statement; ids are drawn first (a volatile CTE is evaluated once), so each
# payload gets its own id back, in the order given.
RECEIVE = """
WITH batch AS (
    SELECT nextval(pg_get_serial_sequence('tradeops_deliveries', 'id')) AS id, body, alerts, ord
    FROM unnest($3::bytea[], $4::integer[]) WITH ORDINALITY AS payload(body, alerts, ord)
), inserted AS (
    INSERT INTO tradeops_deliveries (id, replica, received_at, body, alerts)
    SELECT id, $1, $2, body, alerts FROM batch
)
SELECT id FROM batch ORDER BY ord
"""
PENDING = (
    "SELECT id, received_at, body FROM tradeops_deliveries AS d WHERE replica = $1 "
    "AND alerts > (SELECT count(*) FROM tradeops_delivered WHERE delivery = d.id) ORDER BY id"
)
# Finished payloads past the retention (a payload with an alert still waiting is never pruned).
FINISHED = (
    "SELECT id FROM tradeops_deliveries AS d WHERE received_at < $1 "
    "AND alerts <= (SELECT count(*) FROM tradeops_delivered WHERE delivery = d.id)"
)


# The read pages' conditions (remediator/audit/where.py) in PostgreSQL: $N parameters, JSON through ->> on the
# record's text, times as timestamptz.
POSTGRES = Dialect(
    placeholder="$",
    escalated="((record::json->>'escalated')::boolean)",
    attempts="((record::json->>'attempts')::int)",
    alertname="record::json->>'alertname'",
    rule="record::json->>'rule'",
    priority="record::json->'labels'->>'priority'",
    audit_priority="labels::json->>'priority'",
    time=lambda at: at,
)


class PostgresStore:
    """Audit store in PostgreSQL; every failure to reach it is an AuditUnavailableError."""

    def __init__(self, dsn: str, replica: str, pool_size: int, timeout_seconds: float) -> None:
        self._dsn = dsn
        self.replica = replica
        self._pool_size = pool_size
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._receiving: Batcher[tuple[bytes, int], tuple[int, dt.datetime]] = Batcher(self._receive_batch)
        self._recording: Batcher[tuple[Sequence[AuditEntry], Delivery | None], None] = Batcher(self._record_batch)

    async def open(self) -> None:
        """Open the pool and create the schema (once, under an advisory lock); raise AuditUnavailableError."""
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._timeout,
                command_timeout=self._timeout,
                reset=keep_session,  # this store sets no session state
            )
            async with self._pool.acquire() as connection, connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await connection.execute(SCHEMA)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise AuditUnavailableError(f"PostgreSQL audit store unavailable: {error}") from error

    def outbox(self) -> PostgresOutbox:
        """The escalation outbox's records, shared by replicas (remediator/audit/outbox_postgres.py)."""
        return PostgresOutbox(self._call)

    async def _call(self, operation: Callable[[Any], Awaitable[T]]) -> T:
        if self._pool is None:
            raise AuditUnavailableError("PostgreSQL audit store is not open")
        try:
            async with self._pool.acquire() as connection:
                return await operation(connection)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise AuditUnavailableError(f"PostgreSQL audit store unavailable: {error}") from error

    async def receive(self, body: bytes, count: int) -> tuple[int, dt.datetime]:
        """Record the payload verbatim (one row) before the webhook answers; return its id and time. Payloads
        received while one is being written wait and are written together, in one statement."""
        return await self._receiving.submit((body, count))

    async def _receive_batch(self, payloads: list[tuple[bytes, int]]) -> list[tuple[int, dt.datetime]]:
        stamp = now()
        rows = await self._call(
            lambda c: c.fetch(RECEIVE, self.replica, stamp, [body for body, _ in payloads], [n for _, n in payloads])
        )
        return [(int(row["id"]), stamp) for row in rows]

    async def pending(self) -> list[tuple[Delivery, WebhookAlert]]:
        """Return this replica's alerts whose processing has not finished, oldest first."""

        async def _pending(connection: asyncpg.Connection) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                payloads = await connection.fetch(PENDING, self.replica)
                finished = await connection.fetch(
                    "SELECT delivery, idx FROM tradeops_delivered WHERE delivery = ANY($1::bigint[])",
                    [row["id"] for row in payloads],
                )
            return payloads, finished

        payloads, finished = await self._call(_pending)
        return unfinished(
            ((row["id"], row["received_at"], row["body"]) for row in payloads),
            {(row["delivery"], row["idx"]) for row in finished},
        )

    async def record(self, entries: Sequence[AuditEntry], done: Delivery | None = None) -> None:
        """Append the entries and, with `done`, mark that alert processed, atomically. Records made while one is
        being written wait and are written together, in one statement (group commit)."""
        await self._recording.submit((entries, done))

    async def _record_batch(self, batch: list[tuple[Sequence[AuditEntry], Delivery | None]]) -> list[None]:
        columns = _record_columns(batch)
        await self._call(lambda c: c.execute(RECORD, self.replica, *columns))
        return [None] * len(batch)

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
        row = await self._call(lambda c: c.fetchrow("SELECT record FROM tradeops_incident_records WHERE key = $1", key))
        return Incident.from_record(row["record"]) if row else None

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""
        await self._call(
            lambda c: c.execute(
                "INSERT INTO tradeops_incident_records (key, state, due_at, updated_at, record) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
                "due_at = excluded.due_at, updated_at = excluded.updated_at, record = excluded.record",
                incident.key,
                incident.state,
                incident.due_at(),
                now(),
                incident.to_record(),
            )
        )

    async def due_timers(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents with a timer (retry or still-firing escalation) due by `at`."""
        rows = await self._call(
            lambda c: c.fetch("SELECT record FROM tradeops_incident_records WHERE due_at <= $1", at)
        )
        return [Incident.from_record(row["record"]) for row in rows]

    async def forget_closed(self, before: dt.datetime) -> None:
        """Forget resolved incidents closed before `before` (until then a late firing copy is recognised)."""
        await self._call(
            lambda c: c.execute(
                "DELETE FROM tradeops_incident_records WHERE state = 'closed' AND updated_at < $1", before
            )
        )

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete audit entries and finished payloads older than the retention."""

        async def _prune(connection: asyncpg.Connection) -> None:
            await connection.execute("DELETE FROM tradeops_audit WHERE at < $1", older_than)
            async with connection.transaction():
                finished = [row["id"] for row in await connection.fetch(FINISHED, older_than)]
                await connection.execute("DELETE FROM tradeops_delivered WHERE delivery = ANY($1::bigint[])", finished)
                await connection.execute("DELETE FROM tradeops_deliveries WHERE id = ANY($1::bigint[])", finished)

        await self._call(_prune)

    # Reads for the console and the read API (remediator/audit/reads.py): every condition is constant text with
    # its values as numbered parameters.

    async def incident_page(self, query: IncidentQuery) -> list[IncidentRow]:
        """Incident records matching the query, open first, then by last update (newest first), then key."""
        where = incident_where(query, POSTGRES)
        sql = f"SELECT record, updated_at FROM tradeops_incident_records{where.sql()}"  # noqa: S608 - constant
        sql += f" ORDER BY state = 'closed', updated_at DESC, key DESC LIMIT {where.param(query.limit)}"
        rows = await self._call(lambda c: c.fetch(sql, *where.values))
        return [IncidentRow(Incident.from_record(row["record"]), row["updated_at"]) for row in rows]

    async def audit_page(self, query: AuditQuery) -> list[dict[str, Any]]:
        """Audit entries matching the query, newest first (ids below query.before_id; all replicas)."""
        where = audit_where(query, POSTGRES)
        columns = "id, at, replica, incident, alertname, status, event, rule, decision, detail, labels"
        sql = f"SELECT {columns} FROM tradeops_audit{where.sql()}"  # noqa: S608 - constant columns and conditions
        sql += f" ORDER BY id DESC LIMIT {where.param(query.limit)}"
        rows = await self._call(lambda c: c.fetch(sql, *where.values))
        entries = []
        for row in rows:
            entry = dict(row)
            entry["at"] = row["at"].isoformat()
            entry["labels"] = json.loads(row["labels"])
            entries.append(entry)
        return entries

    async def payloads_received_at(self, times: Sequence[dt.datetime]) -> list[bytes]:
        """The payloads received at these times (an alert's `received` audit entries carry them), oldest first."""
        rows = await self._call(
            lambda c: c.fetch(
                "SELECT body FROM tradeops_deliveries WHERE received_at = ANY($1::timestamptz[]) ORDER BY id",
                [utc(t) for t in times],
            )
        )
        return [bytes(row["body"]) for row in rows]

    async def close(self) -> None:
        """Finish the records being written, then close the pool once running queries have finished."""
        await self._receiving.wait_idle()
        await self._recording.wait_idle()
        if self._pool is not None:
            await self._pool.close()


def _record_columns(batch: list[tuple[Sequence[AuditEntry], Delivery | None]]) -> list[list[Any]]:
    """RECORD's array parameters for a batch: nine audit columns, then the done markers' two."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    for entries, done in batch:
        for entry in entries:
            alert = entry.alert
            row = (
                entry.at,
                alert.incident_key,
                _text(alert.name),
                alert.status,
                entry.event,
                entry.rule,
                entry.decision,
                _text(entry.detail[:4000]),
                alert.labels_json,
            )
            for column, value in zip(columns[:9], row, strict=True):
                column.append(value)
        if done is not None:
            columns[9].append(done.inbox_id)
            columns[10].append(done.position)
    return columns


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible instead of failing the write."""
    return value.replace("\x00", "\\x00")
