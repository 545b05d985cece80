"""Everything a fault or a simulated service may touch, bundled per sandbox instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aio_pika.abc import AbstractChannel

from sandbox.backends import Backends
from sandbox.platform import PlatformState
from sandbox.profiles import Profile

FILL_KEY_PREFIX = "mastertrade:cache:fill:"


@dataclass
class HeldConnections:
    """Real PostgreSQL sessions the sandbox holds open to simulate a leaking client."""

    connections: list[asyncpg.Connection] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        """Backend pids of the held sessions."""
        return [connection.get_server_pid() for connection in self.connections]

    async def close(self) -> None:
        """Close every held session (already terminated ones are ignored)."""
        for connection in self.connections:
            connection.terminate()
        self.connections.clear()


@dataclass
class SandboxContext:
    """One sandbox instance: its profile, simulated state and real backends."""

    profile: Profile
    state: PlatformState
    backends: Backends
    backup_root: Path
    containers: dict[str, str]
    image: str
    held: HeldConnections = field(default_factory=HeldConnections)

    async def postgres(self) -> asyncpg.Pool:
        """Return the PostgreSQL pool of the simulated platform."""
        return await self.backends.postgres()

    async def channel(self) -> AbstractChannel:
        """Open a fresh AMQP channel (a channel closed by a failed declare is never reused)."""
        connection = await self.backends.amqp()
        return await connection.channel()
