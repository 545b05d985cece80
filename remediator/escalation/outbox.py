"""The escalation outbox: what the engine hands over to be paged. `enqueue` records one durable row per
configured channel in the audit store and returns; the sender (remediator/escalation/sender.py) delivers them."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from remediator.audit.postgres import PostgresStore
from remediator.audit.sqlite import SqliteStore
from remediator.config import EscalationConfig
from remediator.escalation.channels import Escalation, channels, record_body
from remediator.escalation.records import Kind, NewRecord, OutboxStore
from remediator.escalation.sender import Sender
from remediator.metrics import RemediatorMetrics
from remediator.state.base import AuditStore


class Outbox(Protocol):
    """Where the engine puts escalations; delivering them is never the engine's work."""

    def channel_names(self) -> list[str]:
        """Return the configured channels' names."""

    async def enqueue(self, escalation: Escalation) -> None:
        """Record the escalation (or its resolve) for every channel before returning."""

    async def start(self) -> None:
        """Start delivering."""

    def reconfigure(self, config: EscalationConfig) -> None:
        """Deliver to the channels of a reloaded configuration from now on."""

    async def close(self) -> None:
        """Stop delivering and release connections."""


def outbox_store(store: AuditStore) -> OutboxStore:
    """The outbox's records in the audit store in use (SQLite, or PostgreSQL shared by replicas)."""
    if isinstance(store, SqliteStore | PostgresStore):
        return store.outbox()
    raise TypeError(f"no escalation outbox for {type(store).__name__}")


class DurableOutbox:
    """Escalations as rows in the audit store, delivered at least once by a sender of their own."""

    def __init__(
        self,
        config: EscalationConfig,
        store: AuditStore,
        replica: str,
        metrics: RemediatorMetrics,
        retention_days: int = 90,
    ) -> None:
        self.config = config
        self.records = outbox_store(store)
        self.sender = Sender(self.records, config, replica, metrics, retention_days)

    def channel_names(self) -> list[str]:
        """Return the configured channels' names."""
        return list(channels(self.config))

    async def enqueue(self, escalation: Escalation) -> None:
        """Record one row per channel (committed when this returns), then wake those channels' senders."""
        at = dt.datetime.now(dt.UTC)
        found = channels(self.config)
        kind: Kind = "resolve" if escalation.resolved else "trigger"
        alertname = escalation.labels.get("alertname", "")
        rows = [
            NewRecord(
                escalation.incident,
                name,
                kind,
                alertname,
                escalation.reason,
                record_body(channel, escalation, at),
                at.timestamp(),
            )
            for name, channel in found.items()
        ]
        if rows:
            await self.records.add(rows)
            self.sender.wake(list(found))

    async def start(self) -> None:
        """Start the sender (the audit store is open by now)."""
        await self.sender.start()

    def reconfigure(self, config: EscalationConfig) -> None:
        """Record for, and deliver to, the reloaded channels."""
        self.config = config
        self.sender.reconfigure(config)

    async def close(self) -> None:
        """Stop the sender; pending rows wait for the next start (or another replica)."""
        await self.sender.close()
