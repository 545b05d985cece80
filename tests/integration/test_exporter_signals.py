"""The probes issue 23 added, against real components and hostile stand-ins: Docker containers' restarts,
PostgreSQL locks and slow queries, Redis on a port of its own, WebSocket connects and a Spring actuator's JVM
metrics. A backend that is down, refuses, hangs, answers garbage or a huge body fails its probe, never the scrape."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import docker
import pytest
import yaml
from aiohttp import WSMsgType, web
from sandbox.app import Sandbox
from sandbox.faults import ServiceParams
from sandbox.profiles import PROFILES
from sandbox.settings import SandboxSettings

from common.web import free_port, free_ports
from tests.exporter_helpers import (
    Samples,
    answering,
    has,
    parse,
    running_exporter,
    scrape_text,
    value,
    write_config,
)
from tests.prereqs import DOCKER_HOST, TEST_IMAGE, require_binary, unique

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving(routes: dict[str, object]) -> AsyncIterator[str]:
    """A loopback backend answering as `routes` says (exporter_helpers.answering); yield its host:port."""
    async with answering(routes) as url:
        yield url.removeprefix("http://")


def failed_with(samples: Samples, probe: str, target: str, reason: str) -> bool:
    """Whether the probe failed in this scrape, counted under reason."""
    failed = value(samples, "tradeops_probe_success", probe=probe, target=target) == 0
    return failed and has(samples, "tradeops_probe_failures_total", probe=probe, target=target, reason=reason)


HUGE = b'{"pad": "' + b"x" * 3_000_000 + b'"}'


# Containers through the Docker engine (seed 000, Morning Checklist 1: "any restart events in last 24h").


async def test_containers_probe_counts_restarts_and_reports_running_and_started_at(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    prefix = unique("tradeops_restarts")
    crashing = docker_client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", "sleep 0.2; exit 1"],
        name=f"{prefix}_crash",
        detach=True,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 3},
    )
    steady = docker_client.containers.run(TEST_IMAGE, ["sleep", "600"], name=f"{prefix}_steady", detach=True)
    stopped = docker_client.containers.create(TEST_IMAGE, ["true"], name=f"{prefix}_never")
    try:
        for _ in range(100):  # the engine restarts it with a growing back-off
            crashing.reload()
            if crashing.attrs["RestartCount"] >= 2:
                break
            await asyncio.sleep(0.2)
        config = write_config(
            tmp_path,
            {
                "containers": [
                    {"name": "engine", "docker_host": DOCKER_HOST, "include": [f"{prefix}_.*"]},
                    {"name": "capped", "docker_host": DOCKER_HOST, "include": [f"{prefix}_.*"], "max_containers": 1},
                ]
            },
        )
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url))
    finally:
        for container in (crashing, steady, stopped):
            container.remove(force=True)
    assert value(samples, "tradeops_probe_success", probe="containers", target="engine") == 1
    restarts = value(samples, "tradeops_container_restarts_total", engine="engine", container=f"{prefix}_crash")
    assert restarts >= 2
    assert value(samples, "tradeops_container_restarts_total", engine="engine", container=f"{prefix}_steady") == 0
    assert value(samples, "tradeops_container_running", engine="engine", container=f"{prefix}_steady") == 1
    assert value(samples, "tradeops_container_running", engine="engine", container=f"{prefix}_never") == 0
    started = value(
        samples, "tradeops_container_started_at_timestamp_seconds", engine="engine", container=f"{prefix}_steady"
    )
    assert started > 1_700_000_000
    # never started: Docker's zero time is no start, so no sample
    assert not has(
        samples, "tradeops_container_started_at_timestamp_seconds", engine="engine", container=f"{prefix}_never"
    )
    kept = [
        dict(labels)["container"]
        for name, labels in samples
        if name == "tradeops_container_running" and ("engine", "capped") in labels
    ]
    assert kept == [f"{prefix}_crash"]  # the first by name
    assert value(samples, "tradeops_probe_series_dropped", probe="containers", target="capped") == 2


async def test_containers_probe_fails_on_an_engine_down_hanging_or_answering_garbage_or_a_huge_body(
    tmp_path: Path, hanging_port: int
) -> None:
    listing = b'[{"Id": "abc", "Names": ["/web"]}]'
    routes: dict[str, object] = {"/containers/json": listing, "/containers/abc/json": b"{not json"}
    async with (
        serving({"/containers/json": b"{garbage"}) as garbage,
        serving({"/containers/json": HUGE}) as huge,
        serving({"/containers/json": b'{"message": "not a list"}'}) as wrong,
        serving({"/containers/json": web.Response(status=500, text="engine error")}) as broken,
        serving(routes) as bad_inspect,
    ):
        config = write_config(
            tmp_path,
            {
                "containers": [
                    {"name": "absent", "docker_host": f"unix://{tmp_path}/no-such.sock"},
                    {"name": "refused", "docker_host": f"tcp://127.0.0.1:{free_port()}"},
                    {"name": "hang", "docker_host": f"tcp://127.0.0.1:{hanging_port}", "timeout_seconds": 30},
                    {"name": "garbage", "docker_host": f"tcp://{garbage}"},
                    {"name": "huge", "docker_host": f"tcp://{huge}"},
                    {"name": "wrong", "docker_host": f"tcp://{wrong}"},
                    {"name": "broken", "docker_host": f"tcp://{broken}"},
                    {"name": "bad_inspect", "docker_host": f"tcp://{bad_inspect}"},
                ]
            },
            max_response_bytes=1024 * 1024,
        )
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url, scrape_timeout=3))
    assert failed_with(samples, "containers", "absent", "connection")
    assert failed_with(samples, "containers", "refused", "connection")
    assert failed_with(samples, "containers", "hang", "timeout")
    assert failed_with(samples, "containers", "garbage", "bad_json")
    assert failed_with(samples, "containers", "huge", "too_large")
    assert failed_with(samples, "containers", "wrong", "bad_json")
    assert failed_with(samples, "containers", "broken", "http_status")
    assert failed_with(samples, "containers", "bad_inspect", "bad_json")


# PostgreSQL locks and slow queries (seed 000, Issue 2; seed 002, Database Lock Issues and "over 5 minutes").


async def test_postgres_probe_counts_waiting_locks_blocked_sessions_and_queries_over_each_threshold(
    tmp_path: Path, postgres_dsn: str
) -> None:
    holder = await asyncpg.connect(postgres_dsn)
    waiter = await asyncpg.connect(postgres_dsn)
    sleeper = await asyncpg.connect(postgres_dsn)
    await holder.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 0)")
    await holder.execute("BEGIN; UPDATE accounts SET balance = 1 WHERE id = 1")
    blocked = asyncio.create_task(waiter.execute("UPDATE accounts SET balance = 2 WHERE id = 1"))
    slow = asyncio.create_task(sleeper.execute("SELECT pg_sleep(30)"))
    try:
        await asyncio.sleep(1.5)
        config = write_config(
            tmp_path, {"postgres": [{"name": "main", "dsn": postgres_dsn, "slow_query_seconds": [1, 300]}]}
        )
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url))
    finally:
        await holder.execute("ROLLBACK")
        await blocked
        slow.cancel()
        for connection in (holder, waiter, sleeper):
            connection.terminate()
    assert value(samples, "tradeops_probe_success", probe="postgres", target="main") == 1
    assert value(samples, "tradeops_postgres_locks_waiting", server="main") >= 1
    assert value(samples, "tradeops_postgres_blocked_sessions", server="main") >= 1
    # the blocked UPDATE and the pg_sleep are both active for over 1 s; none for 300 s
    assert value(samples, "tradeops_postgres_slow_queries", server="main", threshold_seconds="1") >= 2
    assert value(samples, "tradeops_postgres_slow_queries", server="main", threshold_seconds="300") == 0


async def test_postgres_probe_reports_no_locks_and_the_default_5_second_threshold_on_a_quiet_server(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = write_config(tmp_path, {"postgres": [{"name": "main", "dsn": postgres_dsn}]})
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_postgres_slow_queries", server="main", threshold_seconds="5") >= 0
    assert has(samples, "tradeops_postgres_locks_waiting", server="main")


async def test_postgres_probe_fails_against_a_server_that_speaks_something_else(tmp_path: Path) -> None:
    async with serving({}) as http_server:
        config = write_config(
            tmp_path, {"postgres": [{"name": "http", "dsn": f"postgresql://postgres@{http_server}/x"}]}
        )
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url, scrape_timeout=5))
    assert value(samples, "tradeops_probe_success", probe="postgres", target="http") == 0


# Redis on any port (seed 004, Service Health Checks: `redis-cli -p ${REDIS_PORT:-6379} ping`).


@pytest.fixture
def redis_on_its_own_port(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on a free, non-default port, without persistence."""
    server = require_binary("redis-server")
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait()


async def garbage_tcp(reply: bytes) -> tuple[asyncio.Server, int]:
    """A TCP server that answers any request with reply (then keeps the connection)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read(1024)
            writer.write(reply)
            await writer.drain()
            await reader.read(1024)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_redis_probe_reads_a_server_on_a_non_default_port_and_fails_on_garbage_or_a_huge_reply(
    tmp_path: Path, redis_on_its_own_port: int
) -> None:
    garbage, garbage_port = await garbage_tcp(b"HTTP/1.1 400 Bad Request\r\n\r\nnot redis")
    huge, huge_port = await garbage_tcp(b"$900000000\r\n" + b"x" * 4_000_000)
    try:
        config = write_config(
            tmp_path,
            {
                "redis": [
                    {"name": "own_port", "url": f"redis://127.0.0.1:{redis_on_its_own_port}/0"},
                    {"name": "garbage", "url": f"redis://127.0.0.1:{garbage_port}/0"},
                    {"name": "huge", "url": f"redis://127.0.0.1:{huge_port}/0", "timeout_seconds": 2},
                    {"name": "refused", "url": f"redis://127.0.0.1:{free_port()}/0"},
                ]
            },
        )
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url, scrape_timeout=4))
    finally:
        garbage.close()
        huge.close()
    assert value(samples, "tradeops_probe_success", probe="redis", target="own_port") == 1
    assert value(samples, "tradeops_redis_memory_used_bytes", instance_name="own_port") > 0
    for broken in ("garbage", "huge", "refused"):
        assert value(samples, "tradeops_probe_success", probe="redis", target=broken) == 0, broken


# WebSocket connects (seed 004, WebSocket Connection Issues: `wscat -c ws://localhost:8000/ws/market`).


async def test_websocket_probe_connects_reads_the_first_message_and_fails_on_hostile_servers(
    tmp_path: Path, hanging_port: int
) -> None:
    async def ticking(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT and message.data == "subscribe":
                await ws.send_str('{"symbol": "BTC", "price": 1}')
        return ws

    async def silent(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(4)  # past the probe's 1 s; the server's shutdown waits for it
        return ws

    async def flood(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(b"x" * 3_000_000)
        await asyncio.sleep(4)
        return ws

    async def closing(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    routes: dict[str, object] = {
        "/ws/market": ticking,
        "/ws/silent": silent,
        "/ws/flood": flood,
        "/ws/closing": closing,
        "/plain": b'{"not": "a websocket"}',
    }
    async with serving(routes) as host:
        probes = [
            {"name": "connect_only", "url": f"ws://{host}/ws/market"},
            {"name": "market", "url": f"ws://{host}/ws/market", "send": "subscribe", "expect_message": True},
            {"name": "silent", "url": f"ws://{host}/ws/silent", "expect_message": True, "timeout_seconds": 1},
            {"name": "flood", "url": f"ws://{host}/ws/flood", "expect_message": True, "max_message_bytes": 65536},
            {"name": "closing", "url": f"ws://{host}/ws/closing", "expect_message": True},
            {"name": "plain", "url": f"ws://{host}/plain"},
            {"name": "missing", "url": f"ws://{host}/nowhere"},
            {"name": "refused", "url": f"ws://127.0.0.1:{free_port()}/ws"},
            {"name": "hang", "url": f"ws://127.0.0.1:{hanging_port}/ws", "timeout_seconds": 30},
        ]
        config = write_config(tmp_path, {"websocket": probes})
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url, scrape_timeout=3))
    assert value(samples, "tradeops_websocket_up", endpoint="connect_only") == 1
    assert has(samples, "tradeops_websocket_connect_seconds", endpoint="connect_only")
    assert not has(samples, "tradeops_websocket_first_message_seconds", endpoint="connect_only")
    assert value(samples, "tradeops_websocket_up", endpoint="market") == 1
    assert has(samples, "tradeops_websocket_first_message_seconds", endpoint="market")
    assert value(samples, "tradeops_probe_success", probe="websocket", target="market") == 1
    for broken, reason in (
        ("silent", "timeout"),
        ("flood", "too_large"),
        ("closing", "closed"),
        ("plain", "handshake"),
        ("missing", "handshake"),
        ("refused", "connection"),
        ("hang", "timeout"),
    ):
        assert failed_with(samples, "websocket", broken, reason), broken
        assert value(samples, "tradeops_websocket_up", endpoint=broken) == 0, broken


# JVM metrics from a Spring actuator (seed 003, Incident 2 step 3: /actuator/metrics/jvm.memory.used).


def actuator_metric(name: str, value_: float, tags: list[str]) -> bytes:
    """What Spring's /actuator/metrics/{name} answers."""
    body = {
        "name": name,
        "baseUnit": "bytes",
        "measurements": [{"statistic": "VALUE", "value": value_}],
        "availableTags": [{"tag": "area", "values": tags}],
    }
    return json.dumps(body).encode()


async def test_actuator_probe_reads_jvm_memory_by_tag_and_fails_on_hostile_answers(
    tmp_path: Path, hanging_port: int
) -> None:
    async def memory(request: web.Request) -> web.Response:
        areas = [tag.split(":", 1)[1] for tag in request.query.getall("tag", []) if tag.startswith("area:")]
        used = {"heap": 900.0, "nonheap": 50.0}.get(areas[0], 0) if areas else 950.0
        return web.Response(body=actuator_metric("jvm.memory.used", used, ["heap", "nonheap"]))

    routes: dict[str, object] = {
        "/actuator/metrics/jvm.memory.used": memory,
        "/actuator/metrics/jvm.memory.max": actuator_metric("jvm.memory.max", 1000.0, ["heap"]),
        "/garbage/metrics/jvm.memory.used": b"<html>",
        "/huge/metrics/jvm.memory.used": HUGE,
        "/nomeasure/metrics/jvm.memory.used": b'{"name": "jvm.memory.used", "measurements": [{"value": "lots"}]}',
    }
    metrics = [
        {"metric": "jvm.memory.used", "tags": {"area": "heap"}},
        {"metric": "jvm.memory.max", "tags": {"area": "heap"}},
        {"metric": "jvm.memory.used"},
    ]
    async with serving(routes) as host:
        probes = [
            {"name": "trading", "base_url": f"http://{host}/actuator", "metrics": metrics},
            {"name": "partial", "base_url": f"http://{host}/actuator", "metrics": [*metrics, {"metric": "no.such"}]},
            {"name": "garbage", "base_url": f"http://{host}/garbage", "metrics": metrics[:1]},
            {"name": "huge", "base_url": f"http://{host}/huge", "metrics": metrics[:1]},
            {"name": "nomeasure", "base_url": f"http://{host}/nomeasure", "metrics": metrics[:1]},
            {"name": "refused", "base_url": f"http://127.0.0.1:{free_port()}/actuator", "metrics": metrics[:1]},
            {"name": "hang", "base_url": f"http://127.0.0.1:{hanging_port}/actuator", "metrics": metrics[:1]},
        ]
        config = write_config(tmp_path, {"actuator": probes})
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url, scrape_timeout=3))
    heap = {"service": "trading", "metric": "jvm.memory.used", "tags": "area:heap"}
    assert value(samples, "tradeops_actuator_metric", **heap) == 900
    assert (
        value(samples, "tradeops_actuator_metric", service="trading", metric="jvm.memory.max", tags="area:heap") == 1000
    )
    assert value(samples, "tradeops_actuator_metric", service="trading", metric="jvm.memory.used", tags="") == 950
    assert value(samples, "tradeops_probe_success", probe="actuator", target="trading") == 1
    # one metric the service does not have: the others are still reported, and the probe says it failed
    assert value(samples, "tradeops_actuator_metric", **{**heap, "service": "partial"}) == 900
    assert failed_with(samples, "actuator", "partial", "http_status")
    assert failed_with(samples, "actuator", "garbage", "bad_json")
    assert failed_with(samples, "actuator", "huge", "too_large")
    assert failed_with(samples, "actuator", "nomeasure", "bad_result")
    assert failed_with(samples, "actuator", "refused", "connection")
    assert failed_with(samples, "actuator", "hang", "timeout")


# The RabbitMQ probe on the probe set's shared session (issue 23 item 6).


async def test_rabbitmq_credentials_go_to_the_management_api_only_on_the_shared_session(tmp_path: Path) -> None:
    seen: dict[str, str | None] = {}

    def recording(answer: bytes) -> object:
        async def handler(request: web.Request) -> web.Response:
            seen[request.path] = request.headers.get("Authorization")
            return web.Response(body=answer, content_type="application/json")

        return handler

    routes: dict[str, object] = {
        "/api/queues": recording(b'[{"vhost": "/", "name": "q", "messages_ready": 1}]'),
        "/health": recording(b'{"status": "healthy"}'),
    }
    async with serving(routes) as host:
        config = write_config(
            tmp_path,
            {
                "rabbitmq": [{"name": "mq", "management_url": f"http://{host}", "password": "s3cret"}],
                "service_health": [{"name": "svc", "url": f"http://{host}/health"}],
            },
        )
        async with running_exporter(config) as (url, exporter):
            samples = parse(await scrape_text(url))
            probe_set = exporter.probe_set
            rabbitmq = next(probe for probe in probe_set.probes if probe.kind == "rabbitmq")
    assert value(samples, "tradeops_queue_messages_ready", broker="mq", vhost="/", queue="q") == 1
    assert (seen["/api/queues"] or "").startswith("Basic ")
    assert seen["/health"] is None
    assert getattr(rabbitmq, "session", None) is probe_set.session
    assert probe_set.session.closed  # closed once, with the probe set, when the app stopped


# The shipped profiles' new probes against the sandbox's simulated services.


@contextlib.asynccontextmanager
async def sandbox_of(profile: str, postgres_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, dict[str, int]]]:
    """A started sandbox of one profile; yields it and its services' ports."""
    services = PROFILES[profile].services
    *ports, control_port = free_ports(len(services) + 1)
    by_name = {spec.name: port for spec, port in zip(services, ports, strict=True)}
    box = Sandbox(
        SandboxSettings(
            profile=profile,
            ports=by_name,
            control_port=control_port,
            postgres_dsn=postgres_dsn,
            backup_root=tmp_path / "backups",
        )
    )
    await box.start()
    try:
        yield box, by_name
    finally:
        await box.chaos.clear_all()
        await box.stop()


def shipped_probes(profile: str, kinds: tuple[str, ...], ports: dict[str, int]) -> dict[str, object]:
    """The profile's probes of these kinds, their service addresses pointed at the sandbox's ports."""
    text = (Path(__file__).parents[2] / "deploy/profiles" / profile / "exporter.yml").read_text()
    for spec in PROFILES[profile].services:
        text = re.sub(rf"127\.0\.0\.1:{spec.port}\b", f"127.0.0.1:{ports[spec.name]}", text)
    probes: dict[str, object] = yaml.safe_load(text)["probes"]
    return {kind: probes[kind] for kind in kinds}


async def test_the_trademaster_profile_reads_the_jvm_heap_from_the_sandboxs_actuator(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with sandbox_of("trademaster", postgres_dsn, tmp_path) as (_, ports):
        config = write_config(tmp_path, shipped_probes("trademaster", ("actuator",), ports))
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url))
    labels = {"service": "trading_service", "tags": "area:heap"}
    assert value(samples, "tradeops_probe_success", probe="actuator", target="trading_service") == 1
    used = value(samples, "tradeops_actuator_metric", metric="jvm.memory.used", **labels)
    assert 0 < used < value(samples, "tradeops_actuator_metric", metric="jvm.memory.max", **labels)


async def test_the_v11_profile_checks_api_health_and_the_market_feed_and_sees_both_go_down(
    tmp_path: Path, postgres_dsn: str
) -> None:
    async with sandbox_of("ai-trading-v1.1", postgres_dsn, tmp_path) as (box, ports):
        probes = shipped_probes("ai-trading-v1.1", ("service_health", "websocket"), ports)
        config = write_config(tmp_path, probes)
        async with running_exporter(config) as (url, _):
            healthy = parse(await scrape_text(url))
            # the engine's port closes, as a crashed process's
            await box.chaos.inject("service_down", ServiceParams(service="trading_engine"))
            down = parse(await scrape_text(url))
    assert value(healthy, "tradeops_service_up", service="trading_engine", criticality="critical") == 1
    assert value(healthy, "tradeops_websocket_up", endpoint="market_feed") == 1
    assert has(healthy, "tradeops_websocket_first_message_seconds", endpoint="market_feed")
    assert value(down, "tradeops_service_up", service="trading_engine", criticality="critical") == 0
    assert value(down, "tradeops_websocket_up", endpoint="market_feed") == 0
