"""Everything a fault or a simulated service may touch, bundled per sandbox instance."""

from __future__ import annotations

import asyncio
import contextlib
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
class HeldQueries:
    """Real long-running queries the sandbox keeps going, as a service whose queries hang does."""

    connections: list[asyncpg.Connection] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    dsn: str = ""

    def running(self) -> int:
        """How many of the queries are still running (a cancelled or terminated one has ended)."""
        return sum(1 for task in self.tasks if not task.done())

    async def close(self) -> None:
        """Stop every query on the server (a closed socket alone leaves pg_sleep running there) and close."""
        pids = [c.get_server_pid() for c in self.connections if not c.is_closed()]
        if pids and self.dsn:
            with contextlib.suppress(asyncpg.PostgresError, OSError, TimeoutError):
                admin = await asyncpg.connect(self.dsn, timeout=5)
                try:
                    await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
                finally:
                    await admin.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for connection in self.connections:
            connection.terminate()
        self.tasks.clear()
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
    queries: HeldQueries = field(default_factory=HeldQueries)

    @property
    def standin_dir(self) -> Path:
        """Where the host command stand-ins (`pm2`, backup scripts) keep their state (sandbox.standins)."""
        return self.backup_root / "host"

    async def postgres(self) -> asyncpg.Pool:
        """Return the PostgreSQL pool of the simulated platform."""
        return await self.backends.postgres()

    async def channel(self) -> AbstractChannel:
        """Open a fresh AMQP channel (a channel closed by a failed declare is never reused)."""
        connection = await self.backends.amqp()
        return await connection.channel()
