"""Fixtures for real components: each one skips locally, or fails under CI=true, when it is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import docker
import pytest

from tests.prereqs import (
    AMQP_URL,
    POSTGRES_ADMIN_DSN,
    REDIS_URL,
    require_docker,
    require_tcp,
    unique,
)


@pytest.fixture
def postgres_admin_dsn() -> str:
    """DSN of a PostgreSQL superuser on the test server."""
    return require_tcp(POSTGRES_ADMIN_DSN, 5432, "PostgreSQL")


@pytest.fixture
async def postgres_dsn(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh database, dropped (with its sessions) after the test."""
    name = unique("tradeops_test")
    admin = await asyncpg.connect(postgres_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = postgres_admin_dsn.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def redis_url() -> str:
    """URL of the test Redis database."""
    return require_tcp(REDIS_URL, 6379, "Redis")


@pytest.fixture
def amqp_url() -> str:
    """URL of the test RabbitMQ broker."""
    return require_tcp(AMQP_URL, 5672, "RabbitMQ")


@pytest.fixture
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the test Docker engine."""
    client = require_docker()
    yield client
    client.close()
