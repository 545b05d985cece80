"""asyncpg helpers both services use."""

from __future__ import annotations

import asyncpg


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool `reset` that resets nothing, for code that sets no session state (no SET, LISTEN, cursors or session
    advisory locks): asyncpg still rolls back an open transaction, and the default reset query, a second round
    trip for every query, is saved."""
