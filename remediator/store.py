"""The embedded durable store (SQLite): the audit trail and the incidents, so a restart loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from remediator.group_commit import ClosedError, GroupCommitWriter
from remediator.incident import Incident, now
from remediator.payload import WebhookAlert
from remediator.state import AuditUnavailableError

SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;  -- WAL: every commit survives a process crash; see docs/configuration.md
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
CREATE INDEX IF NOT EXISTS audit_incident ON audit (incident);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    alert TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (done, id);
CREATE TABLE IF NOT EXISTS incidents (
    key TEXT PRIMARY KEY,
    alertname TEXT NOT NULL,
    labels TEXT NOT NULL,
    rule TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    escalate_at TEXT,
    escalated INTEGER NOT NULL DEFAULT 0,
    escalation_reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_escalate ON incidents (state, escalate_at);
"""


class StoreClosedError(RuntimeError):
    """The store was used after close()."""


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class SqliteStore:
    """SQLite store used from asyncio: one thread owns the connection and group-commits waiting calls."""

    def __init__(self, path: Path) -> None:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._writer = GroupCommitWriter(self._db)

    async def _run(self, function: Any, *args: Any) -> Any:
        try:
            return await self._writer.run(function, *args)
        except ClosedError as error:
            raise StoreClosedError(str(error)) from error
        except sqlite3.Error as error:  # a full disk, a broken file: nothing more can be recorded
            raise AuditUnavailableError(f"SQLite audit store unavailable: {error}") from error

    async def open(self) -> None:
        """The database was opened by the constructor."""

    async def receive(self, alerts: list[WebhookAlert]) -> list[int]:
        """Durably record received alerts (one transaction) before the webhook answers; return inbox ids."""
        return list(await self._run(self._receive, alerts))

    def _receive(self, alerts: list[WebhookAlert]) -> list[int]:
        stamp = now().isoformat()
        first = self._db.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0] + 1
        self._db.executemany(
            "INSERT INTO inbox (id, received_at, alert) VALUES (?, ?, ?)",
            [(first + offset, stamp, alert.model_dump_json()) for offset, alert in enumerate(alerts)],
        )
        self._db.executemany(
            "INSERT INTO audit (at, incident, alertname, status, event, rule, decision, detail, labels) "
            "VALUES (?, ?, ?, ?, 'received', NULL, NULL, '', ?)",
            [(stamp, a.incident_key, a.name, a.status, json.dumps(a.labels, sort_keys=True)) for a in alerts],
        )
        return list(range(first, first + len(alerts)))

    async def pending(self) -> list[tuple[int, WebhookAlert]]:
        """Return inbox entries not yet processed (after a restart: the work to resume)."""
        rows = await self._run(
            lambda: self._db.execute("SELECT id, alert FROM inbox WHERE done = 0 ORDER BY id").fetchall()
        )
        return [(row[0], WebhookAlert.model_validate_json(row[1])) for row in rows]

    async def done(self, inbox_id: int) -> None:
        """Mark an inbox entry processed."""
        await self._run(lambda: self._db.execute("UPDATE inbox SET done = 1 WHERE id = ?", (inbox_id,)))

    def _audit(self, alert: WebhookAlert, event: str, rule: str | None, decision: str | None, detail: str) -> None:
        self._db.execute(
            "INSERT INTO audit (at, incident, alertname, status, event, rule, decision, detail, labels) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now().isoformat(),
                alert.incident_key,
                alert.name,
                alert.status,
                event,
                rule,
                decision,
                detail[:4000],
                json.dumps(alert.labels, sort_keys=True),
            ),
        )

    async def audit(
        self, alert: WebhookAlert, event: str, rule: str | None = None, decision: str | None = None, detail: str = ""
    ) -> None:
        """Append one audit entry for the alert."""
        await self._run(self._audit, alert, event, rule, decision, detail)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        """Return the newest audit entries first."""

        def _recent() -> list[dict[str, Any]]:
            cursor = self._db.execute(
                "SELECT id, at, incident, alertname, status, event, rule, decision, detail, labels "
                "FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            for row in rows:
                row["labels"] = json.loads(row["labels"])
            return rows

        return list(await self._run(_recent))

    async def incident(self, key: str) -> Incident | None:
        """Return the incident with this key, if any."""
        row = await self._run(lambda: self._db.execute("SELECT * FROM incidents WHERE key = ?", (key,)).fetchone())
        return _incident(row) if row else None

    async def save(self, incident: Incident) -> None:
        """Insert or update an incident."""
        values = (
            incident.key,
            incident.alertname,
            json.dumps(incident.labels, sort_keys=True),
            incident.rule,
            incident.state,
            incident.attempts,
            incident.last_attempt_at.isoformat() if incident.last_attempt_at else None,
            incident.escalate_at.isoformat() if incident.escalate_at else None,
            int(incident.escalated),
            incident.escalation_reason,
            now().isoformat(),
        )
        await self._run(
            lambda: self._db.execute(
                "INSERT INTO incidents (key, alertname, labels, rule, state, attempts, last_attempt_at, escalate_at, "
                "escalated, escalation_reason, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET alertname = excluded.alertname, labels = excluded.labels, "
                "rule = excluded.rule, state = excluded.state, attempts = excluded.attempts, "
                "last_attempt_at = excluded.last_attempt_at, escalate_at = excluded.escalate_at, "
                "escalated = excluded.escalated, escalation_reason = excluded.escalation_reason, "
                "updated_at = excluded.updated_at",
                values,
            )
        )

    async def due_escalations(self, at: dt.datetime) -> list[Incident]:
        """Return open incidents whose still-firing escalation time has come."""
        rows = await self._run(
            lambda: self._db.execute(
                "SELECT * FROM incidents WHERE state = 'open' AND escalated = 0 AND escalate_at IS NOT NULL "
                "AND escalate_at <= ?",
                (at.isoformat(),),
            ).fetchall()
        )
        return [_incident(row) for row in rows]

    async def prune(self, older_than: dt.datetime) -> None:
        """Delete audit entries, processed inbox entries and closed incidents older than the retention."""
        cutoff = older_than.isoformat()

        def _prune() -> None:
            self._db.execute("DELETE FROM audit WHERE at < ?", (cutoff,))
            self._db.execute("DELETE FROM inbox WHERE done = 1 AND received_at < ?", (cutoff,))
            self._db.execute("DELETE FROM incidents WHERE state = 'closed' AND updated_at < ?", (cutoff,))

        await self._run(_prune)

    async def close(self) -> None:
        """Close the database once every queued call has finished."""
        await self._writer.close()


def _incident(row: tuple[Any, ...]) -> Incident:
    return Incident(
        key=row[0],
        alertname=row[1],
        labels=json.loads(row[2]),
        rule=row[3],
        state=row[4],
        attempts=row[5],
        last_attempt_at=_ts(row[6]),
        escalate_at=_ts(row[7]),
        escalated=bool(row[8]),
        escalation_reason=row[9],
    )
