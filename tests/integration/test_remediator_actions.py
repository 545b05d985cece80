"""Each remediation action against its real component: it acts on the target, spares the rest, and fails
cleanly when the component is down, slow, or the target is not there."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import docker
import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from common.http import SharedSession
from common.web import free_port
from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.actions.command import CommandAction, CommandParams
from remediator.actions.docker_restart import DockerRestartAction, DockerRestartParams
from remediator.actions.postgres import (
    PostgresCancelParams,
    PostgresCancelQueriesAction,
    PostgresTerminateAction,
    PostgresTerminateParams,
)
from remediator.actions.rabbitmq_purge import RabbitMQPurgeAction, RabbitMQPurgeParams
from remediator.actions.redis_actions import (
    RedisConfigSetAction,
    RedisConfigSetParams,
    RedisDeleteKeysAction,
    RedisDeleteKeysParams,
    RedisFlushDbAction,
    RedisFlushDbParams,
)
from remediator.actions.silence import AlertmanagerSilenceAction, SilenceParams
from tests.prereqs import DOCKER_HOST, TEST_IMAGE, unique
from tests.processes import alertmanager

pytestmark = pytest.mark.integration


@pytest.fixture
def container(docker_client: docker.DockerClient) -> Iterator[str]:
    name = unique("tradeops-action")
    docker_client.containers.run(TEST_IMAGE, ["sleep", "2147483647"], name=name, network_mode="host", detach=True)
    yield name
    docker_client.containers.get(name).remove(force=True)


async def test_docker_restart_brings_a_stopped_container_back_running(
    docker_client: docker.DockerClient, container: str
) -> None:
    docker_client.containers.get(container).stop(timeout=1)
    action = DockerRestartAction(DOCKER_HOST)
    try:
        result = await action.run(DockerRestartParams(container=container, wait_seconds=30), {})
        assert "exited -> running" in result.detail
        assert docker_client.containers.get(container).status == "running"
        again = await action.run(DockerRestartParams(container=container, mode="start_if_stopped"), {})
        assert not again.changed
    finally:
        await action.close()


async def test_docker_restart_refuses_a_missing_container_and_hostile_names(docker_client: docker.DockerClient) -> None:
    action = DockerRestartAction(DOCKER_HOST)
    try:
        with pytest.raises(PermanentActionError, match="not found"):
            await action.run(DockerRestartParams(container=unique("absent")), {})
    finally:
        await action.close()
    for hostile in ("../x", "a;b", "$(reboot)", "a b", "-rf"):
        with pytest.raises(ValidationError):
            DockerRestartParams(container=hostile)


async def test_docker_restart_with_the_engine_down_is_transient() -> None:
    action = DockerRestartAction(f"unix:///tmp/{unique('nodocker')}.sock")
    try:
        with pytest.raises(TransientActionError):
            await action.run(DockerRestartParams(container="x"), {})
    finally:
        await action.close()


async def test_rabbitmq_purge_empties_a_queue_over_its_limit_and_leaves_one_under_it(amqp_url: str) -> None:
    big, small = unique("tradeops.purge.big"), unique("tradeops.purge.small")
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for name, count in ((big, 50), (small, 5)):
        queue = await channel.declare_queue(name)
        for _ in range(count):
            await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=queue.name)
    action = RabbitMQPurgeAction(amqp_url)
    try:
        purged = await action.run(RabbitMQPurgeParams(queue=big, min_messages=10), {})
        spared = await action.run(RabbitMQPurgeParams(queue=small, min_messages=10), {})
        assert "purged" in purged.detail
        assert not spared.changed
        assert (await channel.declare_queue(big, passive=True)).declaration_result.message_count == 0
        assert (await channel.declare_queue(small, passive=True)).declaration_result.message_count == 5
        with pytest.raises(PermanentActionError, match="does not exist"):
            await action.run(RabbitMQPurgeParams(queue=unique("absent"), min_messages=0), {})
    finally:
        await action.close()
        for name in (big, small):
            await channel.queue_delete(name)
        await connection.close()


async def test_rabbitmq_purge_with_the_broker_down_is_transient() -> None:
    action = RabbitMQPurgeAction(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    with pytest.raises(TransientActionError):
        await action.run(RabbitMQPurgeParams(queue="q"), {})


async def test_postgres_terminate_ends_old_idle_sessions_and_spares_active_others_and_its_own(
    postgres_dsn: str,
) -> None:
    database = postgres_dsn.rsplit("/", 1)[1]
    leaky = [await asyncpg.connect(postgres_dsn, server_settings={"application_name": "leaky"}) for _ in range(3)]
    other = await asyncpg.connect(postgres_dsn, server_settings={"application_name": "other"})
    busy = await asyncpg.connect(postgres_dsn, server_settings={"application_name": "leaky"})
    busy_query = asyncio.create_task(busy.execute("SELECT pg_sleep(5)"))
    await asyncio.sleep(0.3)
    action = PostgresTerminateAction(postgres_dsn)
    try:
        result = await action.run(
            PostgresTerminateParams(
                database=database, application_names=("leaky", "tradeops-remediator"), idle_minutes=0
            ),
            {},
        )
        assert "terminated 3 session(s)" in result.detail
        admin = await asyncpg.connect(postgres_dsn)
        names = [
            r["application_name"]
            for r in await admin.fetch("SELECT application_name FROM pg_stat_activity WHERE datname = $1", database)
        ]
        await admin.close()
        assert names.count("leaky") == 1  # the active one survives
        assert "other" in names
    finally:
        busy_query.cancel()
        for connection in [*leaky, other, busy]:
            connection.terminate()


async def test_postgres_cancel_queries_cancels_only_long_running_queries(postgres_dsn: str) -> None:
    database = postgres_dsn.rsplit("/", 1)[1]
    slow = await asyncpg.connect(postgres_dsn)
    running = asyncio.create_task(slow.execute("SELECT pg_sleep(30)"))
    await asyncio.sleep(1.2)
    action = PostgresCancelQueriesAction(postgres_dsn)
    try:
        result = await action.run(PostgresCancelParams(database=database, older_than_seconds=1), {})
        assert "cancelled [" in result.detail
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(running, 10)
        quiet = await action.run(PostgresCancelParams(database=database, older_than_seconds=1), {})
        assert not quiet.changed
    finally:
        slow.terminate()


async def test_postgres_actions_fail_cleanly_for_a_missing_database_or_a_down_server(postgres_dsn: str) -> None:
    with pytest.raises(PermanentActionError, match="does not exist"):
        await PostgresTerminateAction(postgres_dsn).run(
            PostgresTerminateParams(database=unique("nodb"), application_names=("x",)), {}
        )
    with pytest.raises(TransientActionError):
        await PostgresTerminateAction(f"postgresql://postgres@127.0.0.1:{free_port()}/x").run(
            PostgresTerminateParams(database="x", application_names=("x",)), {}
        )


async def test_redis_delete_keys_removes_the_pattern_and_nothing_else(redis_url: str) -> None:
    prefix = unique("tradeops:cache")
    client = aioredis.Redis.from_url(redis_url)
    await client.mset({f"{prefix}:{n}": "v" for n in range(2500)})
    await client.set(f"{prefix}-keep", "1")
    db = int(redis_url.rsplit("/", 1)[1])
    action = RedisDeleteKeysAction(redis_url.rsplit("/", 1)[0])
    try:
        result = await action.run(RedisDeleteKeysParams(pattern=f"{prefix}:*", db=db), {})
        assert "unlinked 2500 key(s)" in result.detail
        assert [k async for k in client.scan_iter(match=f"{prefix}*")] == [f"{prefix}-keep".encode()]
    finally:
        await client.delete(f"{prefix}-keep")
        await client.aclose()
        await action.close()
    for hostile in ("*", "**", "a*", "*:cache:*", "x y*", "cache\n*"):
        with pytest.raises(ValidationError):
            RedisDeleteKeysParams(pattern=hostile)


async def test_redis_config_set_only_accepts_the_eviction_policy(redis_url: str) -> None:
    action = RedisConfigSetAction(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    before = str((await client.config_get("maxmemory-policy"))["maxmemory-policy"])
    try:
        result = await action.run(RedisConfigSetParams(value="allkeys-lru"), {})
        assert (await client.config_get("maxmemory-policy"))["maxmemory-policy"] == "allkeys-lru"
        assert result.detail.endswith("allkeys-lru")
    finally:
        await client.config_set("maxmemory-policy", before)
        await client.aclose()
        await action.close()
    with pytest.raises(ValidationError):
        RedisConfigSetParams.model_validate({"parameter": "dir", "value": "/tmp"})


async def test_redis_with_the_server_down_is_transient() -> None:
    action = RedisDeleteKeysAction(f"redis://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(TransientActionError):
            await action.run(RedisDeleteKeysParams(pattern="tradeops:x*"), {})
    finally:
        await action.close()


async def test_command_runs_argv_without_a_shell_with_env_from_bound_labels(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    script = "import os, sys; print(os.environ['TRADEOPS_PROCESS'], sys.argv[1:])"
    params = CommandParams(argv=(sys.executable, "-c", script, "{process}", "literal"), env_from_params=("process",))
    hostile = f"api; touch {marker} $(touch {marker})"
    result = await CommandAction().run(params, {"process": hostile})
    assert hostile in result.detail
    assert not marker.exists()
    with pytest.raises(PermanentActionError, match="exited 3"):
        await CommandAction().run(CommandParams(argv=(sys.executable, "-c", "import sys; sys.exit(3)")), {})
    with pytest.raises(TransientActionError, match="timed out"):
        await CommandAction().run(CommandParams(argv=("sleep", "30"), timeout_seconds=0.3), {})
    with pytest.raises(PermanentActionError):
        await CommandAction().run(CommandParams(argv=(str(tmp_path / "missing"),)), {})
    with pytest.raises(ValidationError, match="pm2"):
        CommandParams(argv=("pm2", "restart", "all"))


async def test_command_output_is_truncated_in_the_audit() -> None:
    result = await CommandAction().run(CommandParams(argv=(sys.executable, "-c", "print('x' * 100000)")), {})
    assert len(result.detail) < 5000
    assert "characters)" in result.detail


async def test_alertmanager_silence_creates_an_expiring_silence_in_a_real_alertmanager(tmp_path: Path) -> None:
    async with alertmanager(tmp_path) as url:
        shared = SharedSession("test")
        action = AlertmanagerSilenceAction(url, shared)
        try:
            result = await action.run(
                SilenceParams(alertname="QueueDepthCritical", match_labels={"queue": "signals"}, duration_minutes=5), {}
            )
        finally:
            await shared.close()
        async with aiohttp.ClientSession() as http, http.get(f"{url}/api/v2/silences") as response:
            silences = await response.json()
    assert "silence" in result.detail
    (silence,) = silences
    assert silence["status"]["state"] == "active"
    assert {(m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]} == {
        ("alertname", "QueueDepthCritical", False),
        ("queue", "signals", False),
    }


async def test_alertmanager_silence_with_alertmanager_down_is_transient() -> None:
    http = SharedSession("test")
    action = AlertmanagerSilenceAction(f"http://127.0.0.1:{free_port()}", http)
    try:
        with pytest.raises(TransientActionError):
            await action.run(SilenceParams(alertname="X"), {})
    finally:
        await http.close()


async def test_redis_flush_db_empties_only_its_own_logical_database(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    target = aioredis.Redis.from_url(f"{base}/13")
    neighbour = aioredis.Redis.from_url(f"{base}/12")
    key = unique("tradeops:flush")
    await target.set(key, "1")
    await neighbour.set(key, "1")
    action = RedisFlushDbAction(base)
    try:
        result = await action.run(RedisFlushDbParams(db=13), {})
        assert result.detail == "flushed db 13"
        assert await target.dbsize() == 0  # ASYNC only defers freeing the memory
        assert await target.get(key) is None
        assert await neighbour.get(key) == b"1"
    finally:
        await neighbour.delete(key)
        await target.aclose()
        await neighbour.aclose()
        await action.close()
    with pytest.raises(ValidationError):
        RedisFlushDbParams.model_validate({"db": 16})
