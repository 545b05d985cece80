"""The embedded durable store (SQLite): the audit trail and the incidents, so a restart loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from remediator.audit.group_commit import ClosedError, GroupCommitWriter
from remediator.audit.outbox_sqlite import SqliteOutbox
from remediator.audit.reads import AuditQuery, IncidentQuery, IncidentRow, utc
from remediator.audit.where import Dialect, audit_where, incident_where
from remediator.intake.inbox import unfinished
from remediator.intake.payload import WebhookAlert
from remediator.state.base import AuditEntry, AuditUnavailableError, Delivery
from remediator.state.incident import Incident, now

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;  -- WAL: every commit (inbox, attempt claims) is on disk before the 2xx or the action
PRAGMA wal_autocheckpoint = 1000;  -- the default, said: a commit finding the log over 1,000 pages copies it back
PRAGMA journal_size_limit = 67108864;  -- a log file grown past 64 MiB (one huge batch) is cut back when it restarts
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    incident TEXT NOT NULL,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    rule TEXT,
    decision TEXT,
    detail TEXT,
    labels TEXT NOT NULL
);
-- No index on incident: only an incident's timeline reads by it (a scan, 0.3 s at a million rows), while each
-- storm row would dirty a random index page (docs/benchmarks.md, "Session 9: the audit's incident index").
DROP INDEX IF EXISTS audit_incident;
-- The inbox: each payload verbatim, as it arrived, never updated (a payload is large: rewriting it per alert
-- would cost more than the alert); an alert is done once its (delivery, idx) is in `delivered`.
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    body BLOB NOT NULL,
    alerts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries (received_at);
CREATE TABLE IF NOT EXISTS delivered (
    delivery INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (delivery, idx)
) WITHOUT ROWID;
-- Incidents as Incident.to_record() JSON, with the columns their queries need; closed ones are kept as
-- tombstones (resolution is final) until forget_closed().
CREATE TABLE IF NOT EXISTS incident_records (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    due_at TEXT,
    updated_at TEXT NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;  -- clustered by key: one random page per write, not two
CREATE INDEX IF NOT EXISTS incident_records_due ON incident_records (due_at) WHERE due_at IS NOT NULL;
"""


class StoreClosedError(RuntimeError):
    """The store was used after close()."""


# The read pages' conditions (remediator/audit/where.py) in SQLite: ?NNN parameters, JSON through json_extract,
# times as the ISO text the rows keep.
SQLITE = Dialect(
    placeholder="?",
    escalated="(json_extract(record, '$.escalated') = 1)",
    attempts="json_extract(record, '$.attempts')",
    alertname="json_extract(record, '$.alertname')",
    rule="json_extract(record, '$.rule')",
    priority="json_extract(record, '$.labels.priority')",
    audit_priority="json_extract(labels, '$.priority')",
    time=dt.datetime.isoformat,
)


class SqliteStore:
    """SQLite store used from asyncio: writes are group-committed once per turn of the loop; reads run directly
    (between batches no transaction is open, so they see every committed write)."""

    def __init__(self, path: Path) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._writer = GroupCommitWriter(self._db)

    async def _run(self, function: Any, *args: Any) -> Any:
        try:
            return await self._writer.run(function, *args)
        except ClosedError as error:
            raise StoreClosedError(str(error)) from error
        except sqlite3.Error as error:  # a full disk, a broken file: nothing more can be recorded
            raise AuditUnavailableError(f"SQLite audit store unavailable: {error}") from error

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        """Run a query now: between batches no transaction is open, so it sees every committed write."""
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise AuditUnavailableError(f"SQLite audit store unavailable: {error}") from error

    async def open(self) -> None:
        """The database was opened by the constructor."""

    def outbox(self) -> SqliteOutbox:
        """The escalation outbox's records in this database (remediator/audit/outbox_sqlite.py)."""
        return SqliteOutbox(self._db, self._run, self._read)

    async def receive(self, body: bytes, count: int) -> tuple[int, dt.datetime]:
        """Record the payload verbatim (one row, one commit) before the webhook answers; return its id and time."""
        stamp = now()
        inbox_id = await self._run(
            lambda: (
                self._db.execute(
                    "INSERT INTO deliveries (received_at, body, alerts) VALUES (?, ?, ?)",
                    (stamp.isoformat(), body, count),
                ).lastrowid
            )
        )
        return int(inbox_id), stamp

    async def pending(self) -> list[tuple[Delivery, WebhookAlert]]:
        """Return the alerts whose processing has not finished (after a restart: the work to resume)."""

        payloads = self._read(
            "SELECT id, received_at, body FROM deliveries AS d "
            "WHERE alerts > (SELECT count(*) FROM delivered WHERE delivery = d.id) ORDER BY id"
        )
        finished = self._read(
            "SELECT delivery, idx FROM delivered WHERE delivery IN (SELECT value FROM json_each(?))",
            (json.dumps([row[0] for row in payloads]),),
        )
        return unfinished(
            ((row[0], dt.datetime.fromisoformat(row[1]), row[2]) for row in payloads), set(map(tuple, finished))
        )

    def _record(self, entries: Sequence[AuditEntry], done: Delivery | None) -> None:
        self._db.executemany(
            "INSERT INTO audit (at, incident, alertname, status, event, rule, decision, detail, labels) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    entry.at.isoformat(),
                    entry.alert.incident_key,
                    entry.alert.name,
                    entry.alert.status,
                    entry.event,
                    entry.rule,
                    entry.decision,
                    entry.detail[:4000],
                    entry.alert.labels_json,
                )
                for entry in entries
            ],
        )
        if done is not None:
            self._db.execute(
                "INSERT OR IGNORE INTO delivered (delivery, idx) VALUES (?, ?)", (done.inbox_id, done.position)
            )

    async def record(self, entries: Sequence[AuditEntry], done: Delivery | None = None) -> None:
        """Append the entries and, with `done`, mark that alert processed, in one transaction."""
        await self._run(self._record, entries, done)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest audit entries first."""
        names = ("id", "at", "incident", "alertname", "status", "event", "rule", "decision", "detail", "labels")
        rows = self._read(f"SELECT {', '.join(names)} FROM audit ORDER BY id DESC LIMIT ?", (limit,))  # noqa: S608
        entries = [dict(zip(names, row, strict=True)) for row in rows]
        for entry in entries:
            entry["labels"] = json.loads(entry["labels"])
        return entries

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        rows = self._read("SELECT record FROM incident_records WHERE key = ?", (key,))
        return Incident.from_record(rows[0][0]) if rows else None

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""
        due = incident.due_at()
        values = (
            incident.key,
            incident.state,
            due.isoformat() if due else None,
            now().isoformat(),
            incident.to_record(),
        )
        await self._run(
            lambda: self._db.execute(
                "INSERT INTO incident_records (key, state, due_at, updated_at, record) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = excluded.state, due_at = excluded.due_at, "
                "updated_at = excluded.updated_at, record = excluded.record",
                values,
            )
        )

    async def due_timers(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents with a timer (retry or still-firing escalation) due by `at`."""
        rows = self._read(
            "SELECT record FROM incident_records WHERE due_at IS NOT NULL AND due_at <= ?", (at.isoformat(),)
        )
        return [Incident.from_record(row[0]) for row in rows]

    async def forget_closed(self, before: dt.datetime) -> None:
        """Forget resolved incidents closed before `before` (until then a late firing copy is recognised)."""
        await self._run(
            lambda: self._db.execute(
                "DELETE FROM incident_records WHERE state = 'closed' AND updated_at < ?", (before.isoformat(),)
            )
        )

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete audit entries and finished payloads older than the retention."""
        cutoff = older_than.isoformat()

        def _prune() -> None:
            self._db.execute("DELETE FROM audit WHERE at < ?", (cutoff,))
            # Finished payloads only: an alert still waiting is never pruned, however old.
            finished = (
                "SELECT id FROM deliveries AS d WHERE received_at < ? "
                "AND alerts <= (SELECT count(*) FROM delivered WHERE delivery = d.id)"
            )
            self._db.execute(f"DELETE FROM delivered WHERE delivery IN ({finished})", (cutoff,))  # noqa: S608
            self._db.execute(f"DELETE FROM deliveries WHERE id IN ({finished})", (cutoff,))  # noqa: S608

        await self._run(_prune)

    # Reads for the console and the read API (remediator/audit/reads.py). Times are kept as UTC ISO text, which
    # sorts as time does; every condition below is constant text with its values as parameters.

    async def incident_page(self, query: IncidentQuery) -> list[IncidentRow]:
        """Incident records matching the query, open first, then by last update (newest first), then key."""
        where = incident_where(query, SQLITE)
        sql = f"SELECT record, updated_at FROM incident_records{where.sql()}"  # noqa: S608 - constant conditions
        sql += f" ORDER BY state = 'closed', updated_at DESC, key DESC LIMIT {where.param(query.limit)}"
        rows = self._read(sql, tuple(where.values))
        return [IncidentRow(Incident.from_record(row[0]), dt.datetime.fromisoformat(row[1])) for row in rows]

    async def audit_page(self, query: AuditQuery) -> list[dict[str, Any]]:
        """Audit entries matching the query, newest first (ids below query.before_id)."""
        where = audit_where(query, SQLITE)
        names = ("id", "at", "incident", "alertname", "status", "event", "rule", "decision", "detail", "labels")
        sql = f"SELECT {', '.join(names)} FROM audit{where.sql()}"  # noqa: S608 - constant columns and conditions
        rows = self._read(sql + f" ORDER BY id DESC LIMIT {where.param(query.limit)}", tuple(where.values))
        entries = [dict(zip(names, row, strict=True)) for row in rows]
        for entry in entries:
            entry["labels"] = json.loads(entry["labels"])
        return entries

    async def payloads_received_at(self, times: Sequence[dt.datetime]) -> list[bytes]:
        """The payloads received at these times (an alert's `received` audit entries carry them), oldest first."""
        stamps = json.dumps([utc(t).isoformat() for t in times])
        rows = self._read(
            "SELECT body FROM deliveries WHERE received_at IN (SELECT value FROM json_each(?)) ORDER BY id", (stamps,)
        )
        return [bytes(row[0]) if not isinstance(row[0], str) else row[0].encode() for row in rows]

    async def close(self) -> None:
        """Close the database once every queued call has finished."""
        await self._writer.close()
