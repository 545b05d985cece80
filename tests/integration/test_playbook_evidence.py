"""Playbook conditions and diagnose evidence against real components: the query client against a real Prometheus
(scraping nothing, so its answers are known), and the evidence probes against real PostgreSQL, Redis and RabbitMQ
management, gathered in parallel under one deadline."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aio_pika.abc
import asyncpg
import docker
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.http import SharedSession
from common.web import free_port
from remediator.playbook.evidence import EvidenceBackends, gather
from remediator.playbook.prometheus import PrometheusClient, fill_promql
from remediator.playbook.specs import (
    ContainerLogsProbe,
    DiagnoseProbe,
    HttpGetProbe,
    PostgresSessionsProbe,
    PromQLProbe,
    RabbitQueueProbe,
    RedisInfoProbe,
)
from tests.prereqs import DOCKER_HOST, RABBITMQ_API, TEST_IMAGE, require_binary, require_tcp, unique
from tests.processes import process, wait_http

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[SharedSession]:
    session = SharedSession("tradeops-test")
    yield session
    await session.close()


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[str]:
    """A real Prometheus that scrapes nothing, on a free loopback port."""
    async with running_prometheus(tmp_path) as url:
        yield url


@contextlib.asynccontextmanager
async def running_prometheus(tmp_path: Path) -> AsyncIterator[str]:
    """Run a real Prometheus that scrapes nothing until the block ends; yield its URL."""
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    async with process(argv, tmp_path / "prometheus.log"):
        await wait_http(f"{url}/-/ready")
        yield url


async def test_a_real_prometheus_answers_hold_empty_scalar_ambiguous_and_error(
    prometheus: str, http: SharedSession
) -> None:
    client = PrometheusClient(prometheus, http, timeout_seconds=5)

    holds = await client.query("vector(1)")
    assert (holds.ok, holds.holds) == (True, True)
    assert holds.seen == "{} 1"

    empty = await client.query("vector(1) < 0")
    assert (empty.ok, empty.holds, empty.seen) == (True, False, "empty vector")

    scalar = await client.query("time()")
    assert (scalar.ok, scalar.holds) == (True, True)
    assert scalar.seen.startswith("scalar ")
    zero = await client.query("scalar(vector(0))")
    assert (zero.ok, zero.holds) == (True, False)

    matrix = await client.query("up[5m]")
    assert (matrix.ok, matrix.holds) == (False, False)
    assert "ambiguous" in matrix.error

    string = await client.query('"text"')
    assert (string.ok, string.holds) == (False, False)

    broken = await client.query("sum(")
    assert (broken.ok, broken.holds) == (False, False)
    assert "bad_data" in broken.error


async def test_a_real_prometheus_stopped_is_not_ok(tmp_path: Path, http: SharedSession) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(running_prometheus(tmp_path))
        client = PrometheusClient(url, http, timeout_seconds=2)
        assert (await client.query("vector(1)")).holds
    answer = await client.query("vector(1)")
    assert (answer.ok, answer.holds) == (False, False)


@pytest.mark.parametrize(
    "value",
    ['"}) or vector(1) #', "back\\slash\\", 'quo"te', "new\nline", "tab\tcr\r", "ünï ✓ 订单 🚀", "nul\x00"],
)
async def test_a_hostile_label_value_reaches_a_real_prometheus_as_exactly_one_string(
    prometheus: str, http: SharedSession, value: str
) -> None:
    # label_replace copies the string literal into a label: Prometheus' own lexer must read back the very value.
    expr = fill_promql('label_replace(vector(1), "seen", "{value}", "", "")', {"value": value})
    client = PrometheusClient(prometheus, http, timeout_seconds=5)
    session = http.get()
    async with session.get(f"{prometheus}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    [series] = body["data"]["result"]
    assert series["metric"] == {"seen": value}
    # And a condition built from it holds only as the template means: one series, never an injected `or`.
    condition = fill_promql('vector(1) and on() label_replace(vector(0), "q", "{value}", "", "") < 0', {"value": value})
    assert (await client.query(condition)).holds is False


@pytest.fixture
async def slow_status(aiohttp_server: AiohttpServer) -> str:
    async def status(request: web.Request) -> web.Response:
        return web.Response(text="state=OPEN password=hunter2 Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\nnext line")

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response(text="never")

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get("/hang", hang)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_gather_runs_probes_in_parallel_and_reports_one_that_hangs_past_the_deadline_as_timed_out(
    slow_status: str, http: SharedSession, redis_url: str
) -> None:
    backends = EvidenceBackends(http=http, url_allowed=lambda url: url.startswith(slow_status), redis_url=redis_url)
    probes: list[DiagnoseProbe] = [
        HttpGetProbe(kind="http_get", name="hangs", url=f"{slow_status}/hang"),
        HttpGetProbe(kind="http_get", name="breaker", url=f"{slow_status}/status"),
        RedisInfoProbe(kind="redis_info", name="redis"),
        HttpGetProbe(kind="http_get", name="elsewhere", url="http://127.0.0.2:1/status"),
        PostgresSessionsProbe(kind="postgres_sessions", name="pg"),
    ]
    # The hang would answer after 60 s: its Evidence says timed out only if the deadline cancelled it.
    evidence = await gather(probes, {}, backends, deadline_seconds=1.5)
    by_name = {item.name: item for item in evidence}
    assert [item.name for item in evidence] == [probe.name for probe in probes]
    assert not by_name["hangs"].ok
    assert "timed out" in by_name["hangs"].text
    assert by_name["breaker"].ok
    assert "state=OPEN" in by_name["breaker"].text
    assert "hunter2" not in by_name["breaker"].text
    assert "Z3Vlc3Q6Z3Vlc3Q" not in by_name["breaker"].text
    assert by_name["redis"].ok
    assert "used_memory_human=" in by_name["redis"].text
    assert "evicted_keys=" in by_name["redis"].text
    assert not by_name["elsewhere"].ok
    assert "outside the allowed URL prefixes" in by_name["elsewhere"].text
    assert (by_name["pg"].ok, by_name["pg"].text) == (False, "not configured: no PostgreSQL (backends.postgres_dsn)")


async def test_the_postgres_sessions_probe_shows_the_longest_running_and_idle_sessions_by_application(
    postgres_dsn: str, http: SharedSession
) -> None:
    app = unique("pay")
    idle = await asyncpg.connect(postgres_dsn, server_settings={"application_name": f"{app}_idle"})
    busy = await asyncpg.connect(postgres_dsn, server_settings={"application_name": f"{app}_busy"})
    sleeper = asyncio.ensure_future(busy.execute("SELECT pg_sleep(30) /* password=hunter2 */"))
    try:
        await idle.execute("SELECT 1")
        await asyncio.sleep(0.5)
        backends = EvidenceBackends(http=http, postgres_dsn=postgres_dsn)
        probe = PostgresSessionsProbe(kind="postgres_sessions", name="pg", this_database_only=True, limit=5)
        [evidence] = await gather([probe], {}, backends, deadline_seconds=10)
    finally:
        sleeper.cancel()
        with contextlib.suppress(BaseException):
            await sleeper
        busy.terminate()
        await idle.close()
    assert evidence.ok, evidence.text
    running, _, idle_part = evidence.text.partition("longest-idle")
    assert f"{app}_busy active: 1" in running
    assert f"{app}_idle idle: 1" in running
    assert f"{app}_busy" in running.split("longest-running")[1]
    assert "pg_sleep(30)" in running
    assert "hunter2" not in evidence.text
    assert f"{app}_idle" in idle_part
    assert postgres_dsn not in evidence.text


async def test_the_postgres_probe_of_an_unreachable_server_is_not_ok_and_hides_its_password(
    http: SharedSession,
) -> None:
    dsn = f"postgresql://tradeops:hunter2@127.0.0.1:{free_port()}/x"
    backends = EvidenceBackends(http=http, postgres_dsn=dsn)
    [evidence] = await gather([PostgresSessionsProbe(kind="postgres_sessions", name="pg")], {}, backends, 5)
    assert not evidence.ok
    assert "hunter2" not in evidence.text


async def test_the_rabbitmq_probe_shows_depth_consumers_and_the_oldest_message_age(
    amqp_url: str, http: SharedSession
) -> None:
    require_tcp(RABBITMQ_API, 15672, "RabbitMQ management API")
    queue_name = unique("orders")
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, auto_delete=True)
        published = int(time.time()) - 120
        for index in range(3):
            message = aio_pika.Message(body=f"m{index}".encode(), timestamp=published)
            await channel.default_exchange.publish(message, routing_key=queue_name)

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            pass  # never acked: the messages stay in the queue, unacknowledged

        await queue.consume(hold, no_ack=False)
        backends = EvidenceBackends(http=http, rabbitmq_api_url=RABBITMQ_API)
        probe = RabbitQueueProbe(kind="rabbitmq_queue", name="queue", queue="{queue}")
        text = ""
        for _ in range(60):  # the management API refreshes its statistics every few seconds (bounded)
            [evidence] = await gather([probe], {"queue": queue_name}, backends, deadline_seconds=5)
            assert evidence.ok, evidence.text
            text = evidence.text
            if " 3 messages" in text and "1 consumers" in text and "oldest message 1" in text:
                break
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
    assert f"queue {queue_name} (vhost /): 3 messages" in text
    assert "1 consumers" in text
    age = int(text.split("oldest message ")[1].split("s old")[0])
    assert 120 <= age < 600
    assert "guest" not in text


async def test_the_rabbitmq_probe_of_a_queue_that_does_not_exist_says_so(http: SharedSession) -> None:
    require_tcp(RABBITMQ_API, 15672, "RabbitMQ management API")
    backends = EvidenceBackends(http=http, rabbitmq_api_url=RABBITMQ_API)
    probe = RabbitQueueProbe(kind="rabbitmq_queue", name="queue", queue="{queue}")
    [evidence] = await gather([probe], {"queue": "../../overview"}, backends, deadline_seconds=5)
    assert not evidence.ok
    assert "not found" in evidence.text


async def test_a_promql_probe_reports_the_value_from_a_real_prometheus(prometheus: str, http: SharedSession) -> None:
    backends = EvidenceBackends(http=http, prometheus=PrometheusClient(prometheus, http))
    probes = [
        PromQLProbe(kind="promql", name="value", query='label_replace(vector(42), "queue", "{queue}", "", "")'),
        PromQLProbe(kind="promql", name="broken", query="sum("),
    ]
    value, broken = await gather(probes, {"queue": "orders"}, backends, deadline_seconds=10)
    assert value.ok
    assert '{queue="orders"} 42' in value.text
    assert not broken.ok
    assert "bad_data" in broken.text


async def test_the_container_logs_probe_shows_the_tail_of_a_real_container_scrubbed(
    docker_client: docker.DockerClient, http: SharedSession
) -> None:
    name = unique("tradeops-logs").replace("_", "-")
    script = "for i in 1 2 3 4 5; do echo line$i; done; echo 'DATABASE_URL=postgresql://app:hunter2@db/x'; sleep 600"
    container = docker_client.containers.run(
        TEST_IMAGE, ["sh", "-c", script], name=name, network_mode="host", detach=True
    )
    try:
        backends = EvidenceBackends(http=http, docker_host=DOCKER_HOST)
        probe = ContainerLogsProbe(kind="container_logs", name="logs", container="{service}", tail=3)
        evidence = None
        for _ in range(50):  # until the container has written its lines (bounded)
            [evidence] = await gather([probe], {"service": name}, backends, deadline_seconds=10)
            if "DATABASE_URL" in evidence.text:
                break
            await asyncio.sleep(0.1)
        assert evidence is not None
        assert evidence.ok, evidence.text
        assert "line4" in evidence.text
        assert "line5" in evidence.text
        assert "line1" not in evidence.text  # the tail, not the whole log
        assert "hunter2" not in evidence.text
        [missing] = await gather([probe], {"service": name + "-gone"}, backends, deadline_seconds=10)
        assert (missing.ok, "not found" in missing.text) == (False, True)
    finally:
        container.remove(force=True)
