"""redis_delete_keys, redis_flush_db and redis_config_set (seed 000 Issue 4). Never FLUSHALL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import redis.asyncio as aioredis
from pydantic import Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError

# A key pattern must have a literal prefix of at least 3 characters before any wildcard: never "*".
Pattern = Annotated[str, Field(min_length=4, max_length=256, pattern=r"^[A-Za-z0-9_:.-]{3,}[A-Za-z0-9_:.*?-]*$")]


class RedisAction(Action):
    """Shared client handling: one client per logical database of the configured server."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._clients: dict[int, aioredis.Redis] = {}

    def client(self, db: int) -> aioredis.Redis:
        """Return a client of the logical database."""
        if self.url is None:
            raise PermanentActionError("no Redis configured (backends.redis_url)")
        if db not in self._clients:
            self._clients[db] = aioredis.Redis.from_url(self.url, db=db, socket_timeout=10, socket_connect_timeout=5)
        return self._clients[db]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _transient(error: RedisError) -> TransientActionError | PermanentActionError:
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return TransientActionError(f"Redis: {error}")
    return PermanentActionError(f"Redis: {error}")


class RedisDeleteKeysParams(ActionParams):
    pattern: Pattern
    db: Annotated[int, Field(ge=0, le=15)] = 0
    max_keys: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000


class RedisDeleteKeysAction(RedisAction):
    """Deletes keys matching an allowlisted pattern with SCAN and UNLINK (non-blocking), at most max_keys."""

    name = "redis_delete_keys"
    params_model = RedisDeleteKeysParams

    async def run(self, params: RedisDeleteKeysParams, bound: Mapping[str, str]) -> ActionResult:
        client = self.client(params.db)
        removed = 0
        batch: list[bytes] = []
        try:
            async for key in client.scan_iter(match=params.pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000 or removed + len(batch) >= params.max_keys:
                    removed += await client.unlink(*batch)
                    batch.clear()
                    if removed >= params.max_keys:
                        break
            if batch:
                removed += await client.unlink(*batch)
        except RedisError as error:
            raise _transient(error) from error
        return ActionResult(
            f"unlinked {removed} key(s) matching {params.pattern} in db {params.db}", changed=removed > 0
        )


class RedisFlushDbParams(ActionParams):
    db: Annotated[int, Field(ge=0, le=15)]


class RedisFlushDbAction(RedisAction):
    """FLUSHDB ASYNC of one logical database (the runbook's "Flush Old Cache (if safe)"): only the db given."""

    name = "redis_flush_db"
    params_model = RedisFlushDbParams

    async def run(self, params: RedisFlushDbParams, bound: Mapping[str, str]) -> ActionResult:
        try:
            await self.client(params.db).flushdb(asynchronous=True)
        except RedisError as error:
            raise _transient(error) from error
        return ActionResult(f"flushed db {params.db}")


class RedisConfigSetParams(ActionParams):
    parameter: Literal["maxmemory-policy"] = "maxmemory-policy"
    value: Literal["allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "volatile-ttl", "noeviction"]


class RedisConfigSetAction(RedisAction):
    """CONFIG SET of an allowlisted parameter (maxmemory-policy, seed 000 Issue 4 solution 3)."""

    name = "redis_config_set"
    params_model = RedisConfigSetParams

    async def run(self, params: RedisConfigSetParams, bound: Mapping[str, str]) -> ActionResult:
        client = self.client(0)
        try:
            current = (await client.config_get(params.parameter)).get(params.parameter)
            if current == params.value:
                return ActionResult(f"{params.parameter} already {params.value}", changed=False)
            await client.config_set(params.parameter, params.value)
        except RedisError as error:
            raise _transient(error) from error
        return ActionResult(f"{params.parameter}: {current} -> {params.value}")
