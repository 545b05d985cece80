"""Connections from the sandbox to the real components its faults act on, opened on first use."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import docker
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustConnection
from docker.client import DockerClient


class BackendUnavailableError(RuntimeError):
    """A real component the sandbox needs cannot be reached; the message says which and why."""


@dataclass
class Backends:
    """Lazily opened clients for PostgreSQL, Redis, RabbitMQ and (optionally) a Docker engine."""

    postgres_dsn: str
    redis_url: str
    amqp_url: str
    docker_host: str | None
    _pool: asyncpg.Pool | None = field(default=None, init=False)
    _redis: aioredis.Redis | None = field(default=None, init=False)
    _amqp: AbstractRobustConnection | None = field(default=None, init=False)
    _docker: DockerClient | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def postgres(self) -> asyncpg.Pool:
        """Return the shared PostgreSQL pool, creating the sandbox database if it does not exist."""
        async with self._lock:
            if self._pool is None:
                try:
                    await ensure_database(self.postgres_dsn)
                    self._pool = await asyncpg.create_pool(self.postgres_dsn, min_size=1, max_size=4, timeout=5)
                except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                    raise BackendUnavailableError(f"PostgreSQL: {error}") from error
            return self._pool

    async def redis(self) -> aioredis.Redis:
        """Return the Redis client (connections are made per command by its pool)."""
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return self._redis

    async def amqp(self) -> AbstractRobustConnection:
        """Return the AMQP connection to RabbitMQ."""
        async with self._lock:
            if self._amqp is None or self._amqp.is_closed:
                try:
                    self._amqp = await asyncio.wait_for(aio_pika.connect_robust(self.amqp_url), 10)
                except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as error:
                    raise BackendUnavailableError(f"RabbitMQ: {error!r}") from error
            return self._amqp

    def docker(self) -> DockerClient:
        """Return the Docker client, or raise BackendUnavailableError when no engine is configured."""
        if self.docker_host is None:
            raise BackendUnavailableError("no Docker engine configured (--docker-host)")
        if self._docker is None:
            self._docker = docker.DockerClient(base_url=self.docker_host, timeout=30)
        return self._docker

    async def close(self) -> None:
        """Close every client that was opened."""
        if self._pool is not None:
            await self._pool.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._amqp is not None:
            await self._amqp.close()
        if self._docker is not None:
            await asyncio.to_thread(self._docker.close)


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database when it is missing (connecting to the `postgres` database to do so)."""
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await connection.close()
        return
    name = urlsplit(dsn).path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise BackendUnavailableError(f"PostgreSQL: database name {name!r} is not a plain identifier")
    admin = await asyncpg.connect(dsn, database="postgres", timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await admin.close()
