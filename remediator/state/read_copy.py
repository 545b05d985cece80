"""The read copy of the Redis state's incidents in the audit store (what the console and the read API query).

Best effort: Redis is the authority, and a copy that cannot be written (the audit store down or slow) never
blocks or undoes a Redis write. It is logged, counted, and its incident noted in a Redis set; `catch_up` copies
the noted incidents again, each under its lock (so a copy never overwrites a newer one), once the store is back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.logs import log_event
from remediator.state.base import AuditUnavailableError, Hold, IncidentStore
from remediator.state.incident import Incident

logger = logging.getLogger("remediator.state")
CATCH_UP_BATCH = 100  # incidents copied again per catch-up call
CATCH_UP_LOCK_SECONDS = 1.0  # a catch-up holds an incident this long at most (a held one is left to its holder)
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
Holder = Callable[[str, float], contextlib.AbstractAsyncContextManager[Hold]]


class ReadCopies:
    """Copies incidents into the audit store without ever failing the caller; remembers the ones it missed."""

    def __init__(
        self,
        reads: IncidentStore,
        redis: Redis,
        key: Callable[..., str],
        failed: Callable[[], None] | None = None,
    ) -> None:
        self.reads = reads
        self.redis = redis
        self.key = key  # the Redis key of its parts (RedisState._key)
        self.behind_key = key("copies_behind")  # the Redis set of incident keys whose copy is behind
        self.failed = failed

    async def copy(self, incident: Incident) -> bool:
        """Copy the incident (call it after its Redis write, under its lock); on failure log, count and note it
        for `catch_up`, and return False. Never raises for the audit store."""
        try:
            await self.reads.save(incident)
        except AuditUnavailableError as error:
            log_event(logger, logging.WARNING, "read_copy_failed", incident=incident.key, error=str(error))
            if self.failed is not None:
                self.failed()
            with contextlib.suppress(*REDIS_ERRORS):
                await self.redis.sadd(self.behind_key, incident.key)
            return False
        return True

    async def catch_up(self, hold: Holder) -> int:
        """Copy again (each under its lock, as Redis has it now) the incidents whose copy is behind; return how
        many were copied. An incident held elsewhere is left: its holder copies it as it lets it go."""
        try:
            found = await self.redis.srandmember(self.behind_key, CATCH_UP_BATCH)
        except REDIS_ERRORS:
            return 0
        copied = 0
        keys: list[Any] = found if isinstance(found, list) else []
        for raw in keys:
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if await self.redis.exists(self.key("lock", key)):
                continue  # held: its holder copies it as it lets go (and the timers are not kept waiting)
            async with hold(key, CATCH_UP_LOCK_SECONDS) as held:
                if not held.won:
                    continue
                # Removed before the copy: a save that fails to copy meanwhile notes the key again.
                await self.redis.srem(self.behind_key, key)
                if held.incident is not None and not await self.copy(held.incident):
                    return copied  # the audit store is still away
                copied += 1
        return copied
