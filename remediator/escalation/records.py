"""The escalation outbox's records and the store interface that keeps them (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["trigger", "resolve"]
State = Literal["pending", "delivered", "cancelled", "superseded"]


@dataclass(frozen=True)
class NewRecord:
    """One escalation (or its resolve) for one channel, as enqueued; `body` is JSON without secrets."""

    incident: str
    channel: str
    kind: Kind
    alertname: str
    reason: str
    body: str
    created_at: float  # epoch seconds


@dataclass(frozen=True)
class OutboxRecord:
    """A record as stored: what to send, and how its delivery is going."""

    id: int
    incident: str
    channel: str
    kind: Kind
    alertname: str
    reason: str
    body: str
    created_at: float
    next_attempt_at: float
    attempts: int
    state: State


@dataclass(frozen=True)
class ChannelStats:
    """A channel's pending records: how many, and when the oldest was created (None when none)."""

    pending: int
    oldest_created_at: float | None


class OutboxStore(Protocol):
    """Where outbox records live; every method is one transaction."""

    async def prepare(self) -> None:
        """Create the table if needed."""

    async def add(self, records: Sequence[NewRecord]) -> None:
        """Record them durably. A resolve cancels the pending, never attempted, unleased triggers of its incident
        and channel; it is itself kept as `superseded` (never sent) when no trigger of them can have paged."""

    async def release_leases(self, owner: str) -> None:
        """Free the leases `owner` holds (a restart of that replica: its sends died with it)."""

    async def claim(self, channel: str, owner: str, at: float, lease_until: float, limit: int) -> list[OutboxRecord]:
        """Lease up to `limit` due pending records of the channel that nobody holds, oldest first."""

    async def delivered(self, ids: Sequence[int], owner: str, at: float, coalesced: bool) -> None:
        """Mark these leased records delivered (one attempt more each) and free their lease."""

    async def failed(self, retry_at: Mapping[int, float], owner: str, error: str) -> None:
        """Count a failed attempt: retry each at its time, or cancel a trigger a newer resolve has made moot."""

    async def release(self, ids: Sequence[int], owner: str) -> None:
        """Free leases taken but not attempted."""

    async def stats(self) -> dict[str, ChannelStats]:
        """Pending records per channel."""

    async def prune(self, before: float) -> None:
        """Delete finished records created before this time."""
