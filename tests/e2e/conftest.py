"""The e2e stacks' shared servers: each pytest worker (`make test` runs the e2e tests on two) has a PostgreSQL
cluster and a RabbitMQ node of its own. Stacks side by side must not share them: the connection alerts count a
server's sessions, whoever opened them, and every MasterTrade stack's queues carry the runbook's names, so one
stack's fault would fire, and be acted on, in the other."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sandbox.broker import RABBITMQ_SERVER, private_rabbitmq
from sandbox.profiles import PROFILES
from sandbox.stack import StackOptions, StackPorts

from common.web import free_port
from tests.prereqs import require_binary, unique
from tests.processes import postgres_binary, private_postgres, private_postgres_cluster


@dataclass(frozen=True)
class Servers:
    """Where this worker's own PostgreSQL and RabbitMQ listen."""

    postgres_admin_dsn: str
    amqp_url: str
    rabbitmq_api: str

    def stack_options(self, run_dir: Path, profile: str, prefix: str, **more: object) -> StackOptions:
        """Options of a stack of `profile` on these servers: free ports, a database and container names of its
        own."""
        return StackOptions(
            run_dir=run_dir,
            ports=StackPorts.free(PROFILES[profile]),
            profile=profile,
            postgres_admin_dsn=self.postgres_admin_dsn,
            database=unique(prefix),
            amqp_url=self.amqp_url,
            rabbitmq_api=self.rabbitmq_api,
            container_prefix=unique(prefix.replace("_", "-")) + "_",
            **more,  # type: ignore[arg-type]
        )

    async def drop_database(self, name: str) -> None:
        """Drop a stack's database, with any session left in it."""
        admin = await asyncpg.connect(self.postgres_admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """A directory for the worker's servers, outside pytest's tmp tree (RabbitMQ's paths must stay short)."""
    with tempfile.TemporaryDirectory(prefix="tradeops-e2e-") as name:
        yield Path(name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def servers(servers_dir: Path) -> AsyncIterator[Servers]:
    """This worker's PostgreSQL cluster and RabbitMQ node, started once and stopped after its last test."""
    postgres_binary("postgres")
    require_binary(RABBITMQ_SERVER)
    port = free_port()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    async with (
        private_postgres_cluster() as data_dir,
        private_postgres(data_dir, port),
        private_rabbitmq(servers_dir, f"tradeops-e2e-{worker}-{os.getpid()}") as (amqp_url, api),
    ):
        yield Servers(f"postgresql://postgres@127.0.0.1:{port}/postgres", amqp_url, api)
