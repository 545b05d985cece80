"""Every probe against its real component, healthy and faulty; a failing probe never fails the scrape."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web

from common.version import build_info
from common.web import free_port
from tests.exporter_helpers import answering, has, parse, running_exporter, scrape_text, value, write_config
from tests.prereqs import RABBITMQ_API, require_binary, require_tcp, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def fake_service() -> AsyncIterator[tuple[str, dict[str, web.Response | bytes]]]:
    """A loopback HTTP server whose /health answer each test sets (stands in for a trading service)."""
    answers: dict[str, web.Response | bytes] = {}
    async with answering(answers) as url:
        yield url, answers


def mgmt_sample(name: str, queue: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """The sample key of a queue gauge from the `mgmt` broker's default vhost."""
    return name, frozenset({"broker": "mgmt", "vhost": "/", "queue": queue}.items())


async def hold_message(message: AbstractIncomingMessage) -> None:
    """A consumer that keeps the message it is given unacknowledged."""


def refused_port() -> int:
    return free_port()


async def test_service_health_reads_numbers_from_the_health_document_and_skips_what_is_not_a_number(
    tmp_path: Path, fake_service: tuple[str, dict[str, web.Response | bytes]]
) -> None:
    base, answers = fake_service
    answers["/scored"] = (
        b'{"status": "healthy", "health_score": 97.5, "queues": {"depth": 12}, "flag": true, "text": "5",'
        b' "nan": NaN, "list": [1]}'
    )
    paths = {
        "health_score": "health_score",
        "queue_depth": "queues.depth",
        "flag": "flag",
        "text": "text",
        "nan": "nan",
        "list": "list",
        "missing": "no.such.path",
    }
    config = write_config(
        tmp_path, {"service_health": [{"name": "maint", "url": f"{base}/scored", "value_paths": paths}]}
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_service_value", service="maint", field="health_score") == 97.5
    assert value(samples, "tradeops_service_value", service="maint", field="queue_depth") == 12
    fields = {dict(labels)["field"] for name, labels in samples if name == "tradeops_service_value"}
    assert fields == {"health_score", "queue_depth"}


async def test_service_health_reports_healthy_unhealthy_garbage_and_oversized_bodies(
    tmp_path: Path, fake_service: tuple[str, dict[str, web.Response | bytes]]
) -> None:
    base, answers = fake_service
    answers["/ok"] = b'{"status": "healthy"}'
    answers["/sick"] = web.json_response({"status": "unhealthy"}, status=503)
    answers["/garbage"] = b"{this is not json"
    answers["/huge"] = b'{"status": "healthy", "pad": "' + b"x" * 5_000_000 + b'"}'
    answers["/actuator"] = b'{"status": "UP", "components": {"db": {"status": "UP"}, "redis": {"status": "DOWN"}}}'
    answers["/plain"] = b"OK"
    config = write_config(
        tmp_path,
        {
            "service_health": [
                {"name": "ok", "url": f"{base}/ok", "criticality": "critical"},
                {"name": "sick", "url": f"{base}/sick"},
                {"name": "garbage", "url": f"{base}/garbage"},
                {"name": "huge", "url": f"{base}/huge"},
                {"name": "actuator", "url": f"{base}/actuator", "components_path": "components"},
                {"name": "plain", "url": f"{base}/plain", "status_path": None},
                {"name": "refused", "url": f"http://127.0.0.1:{refused_port()}/health"},
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_service_up", service="ok", criticality="critical") == 1
    assert value(samples, "tradeops_service_up", service="sick", criticality="high") == 0
    assert value(samples, "tradeops_service_http_status", service="sick") == 503
    assert value(samples, "tradeops_probe_success", probe="service_health", target="sick") == 1
    for broken in ("garbage", "huge", "refused"):
        assert value(samples, "tradeops_probe_success", probe="service_health", target=broken) == 0
        assert value(samples, "tradeops_service_up", service=broken, criticality="high") == 0
    assert (
        value(samples, "tradeops_probe_failures_total", probe="service_health", target="huge", reason="too_large") == 1
    )
    assert (
        value(samples, "tradeops_probe_failures_total", probe="service_health", target="garbage", reason="bad_json")
        == 1
    )
    assert value(samples, "tradeops_service_component_up", service="actuator", component="db") == 1
    assert value(samples, "tradeops_service_component_up", service="actuator", component="redis") == 0
    assert value(samples, "tradeops_service_up", service="plain", criticality="high") == 1


async def test_a_hanging_backend_fails_its_probe_and_the_scrape_still_answers_within_its_timeout(
    tmp_path: Path, hanging_port: int, fake_service: tuple[str, dict[str, web.Response | bytes]]
) -> None:
    base, answers = fake_service
    answers["/ok"] = b'{"status": "healthy"}'
    config = write_config(
        tmp_path,
        {
            "service_health": [
                {"name": "hang", "url": f"http://127.0.0.1:{hanging_port}/health", "timeout_seconds": 30},
                {"name": "ok", "url": f"{base}/ok"},
            ],
            "postgres": [
                {"name": "hang", "dsn": f"postgresql://postgres@127.0.0.1:{hanging_port}/x", "timeout_seconds": 30}
            ],
            "redis": [{"name": "hang", "url": f"redis://127.0.0.1:{hanging_port}/0", "timeout_seconds": 30}],
        },
        scrape_timeout_margin_seconds=0.5,
    )
    async with running_exporter(config) as (url, _):
        # scrape_text's client gives up 5 s after the scrape timeout: an answer at all proves the bound.
        samples = parse(await scrape_text(url, scrape_timeout=2))
    for probe in ("service_health", "postgres", "redis"):
        assert value(samples, "tradeops_probe_success", probe=probe, target="hang") == 0
        assert value(samples, "tradeops_probe_failures_total", probe=probe, target="hang", reason="timeout") == 1
    assert value(samples, "tradeops_probe_success", probe="service_health", target="ok") == 1


async def test_exporter_starts_and_serves_with_every_backend_down(tmp_path: Path) -> None:
    dead = refused_port()
    config = write_config(
        tmp_path,
        {
            "service_health": [{"name": "s", "url": f"http://127.0.0.1:{dead}/health"}],
            "collectors": [{"name": "c", "url": f"http://127.0.0.1:{dead}/health/collectors"}],
            "strategy_generation": [{"name": "g", "dsn": f"postgresql://postgres@127.0.0.1:{dead}/x"}],
            "postgres": [{"name": "p", "dsn": f"postgresql://postgres@127.0.0.1:{dead}/x"}],
            "redis": [{"name": "r", "url": f"redis://127.0.0.1:{dead}/0"}],
            "rabbitmq": [
                {"name": "m", "management_url": f"http://127.0.0.1:{dead}"},
                {"name": "a", "amqp_url": f"amqp://guest:guest@127.0.0.1:{dead}/", "queues": ["q"]},
            ],
            "sql": [
                {
                    "name": "q",
                    "dsn": f"postgresql://postgres@127.0.0.1:{dead}/x",
                    "query": "SELECT 1 AS v",
                    "metrics": [{"name": "tradeops_sql_v", "help": "v", "value_column": "v"}],
                }
            ],
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url, scrape_timeout=5))
    probes = [("service_health", "s"), ("collectors", "c"), ("strategy_generation", "g"), ("postgres", "p")]
    probes += [("redis", "r"), ("rabbitmq", "m"), ("rabbitmq", "a"), ("sql", "q")]
    for probe, target in probes:
        assert value(samples, "tradeops_probe_success", probe=probe, target=target) == 0, probe
        assert has(samples, "tradeops_probe_duration_seconds", probe=probe, target=target)
    assert value(samples, "tradeops_exporter_build_info", **build_info().labels()) == 1


async def test_postgres_probe_counts_connections_by_state_and_the_oldest_idle_transaction(
    tmp_path: Path, postgres_dsn: str
) -> None:
    held = [await asyncpg.connect(postgres_dsn) for _ in range(3)]
    await held[0].execute("BEGIN; SELECT 1")
    try:
        database = postgres_dsn.rsplit("/", 1)[1]
        config = write_config(tmp_path, {"postgres": [{"name": "main", "dsn": postgres_dsn, "databases": [database]}]})
        async with running_exporter(config) as (url, _):
            await asyncio.sleep(0.2)
            samples = parse(await scrape_text(url))
    finally:
        for connection in held:
            await connection.close()
    assert value(samples, "tradeops_probe_success", probe="postgres", target="main") == 1
    assert value(samples, "tradeops_postgres_connections", server="main", state="idle_in_transaction") >= 1
    assert value(samples, "tradeops_postgres_connections", server="main", state="idle") >= 2
    assert value(samples, "tradeops_postgres_max_connections", server="main") >= 10
    assert value(samples, "tradeops_postgres_longest_idle_in_transaction_seconds", server="main") > 0
    assert value(samples, "tradeops_postgres_database_size_bytes", server="main", database=database) > 0


async def test_strategy_generation_probe_reads_window_counts_runs_and_active(tmp_path: Path, postgres_dsn: str) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute(
            """
            CREATE TABLE gen_runs (finished timestamptz, made int);
            CREATE TABLE strats (born timestamptz NOT NULL, state text);
            INSERT INTO gen_runs VALUES (now() - interval '30 hours', 480), (now() - interval '2 hours', 500);
            INSERT INTO strats SELECT now() - interval '2 hours', CASE WHEN n <= 3 THEN 'active' ELSE 'x' END
                FROM generate_series(1, 500) n;
            INSERT INTO strats SELECT now() - interval '30 hours', 'x' FROM generate_series(1, 480) n;
            """
        )
    finally:
        await connection.close()
    config = write_config(
        tmp_path,
        {
            "strategy_generation": [
                {
                    "name": "mt",
                    "dsn": postgres_dsn,
                    "table": "strats",
                    "created_at_column": "born",
                    "status_column": "state",
                    "runs": {"table": "gen_runs", "completed_at_column": "finished", "count_column": "made"},
                }
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_strategies_created_in_window", system="mt", window_seconds="86400") == 500
    assert value(samples, "tradeops_strategies_active", system="mt") == 3
    assert value(samples, "tradeops_strategy_last_run_strategies", system="mt") == 500
    assert has(samples, "tradeops_strategy_last_generation_timestamp_seconds", system="mt")


async def test_sql_probe_turns_rows_into_gauges_and_a_failing_query_into_probe_failure(
    tmp_path: Path, postgres_dsn: str
) -> None:
    config = write_config(
        tmp_path,
        {
            "sql": [
                {
                    "name": "good",
                    "dsn": postgres_dsn,
                    "query": "SELECT 'a' AS k, 1.5 AS v UNION ALL SELECT 'b', 2",
                    "metrics": [
                        {"name": "tradeops_sql_thing", "help": "A thing.", "value_column": "v", "label_columns": ["k"]}
                    ],
                },
                {
                    "name": "broken",
                    "dsn": postgres_dsn,
                    "query": "SELECT * FROM no_such_table",
                    "metrics": [{"name": "tradeops_sql_other", "help": "Other.", "value_column": "v"}],
                },
                {
                    "name": "writer",
                    "dsn": postgres_dsn,
                    "query": "CREATE TABLE sneaky (x int)",
                    "metrics": [{"name": "tradeops_sql_w", "help": "W.", "value_column": "v"}],
                },
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_sql_thing", query="good", k="a") == 1.5
    assert value(samples, "tradeops_sql_thing", query="good", k="b") == 2
    assert value(samples, "tradeops_probe_success", probe="sql", target="broken") == 0
    assert value(samples, "tradeops_probe_failures_total", probe="sql", target="broken", reason="query") == 1
    assert value(samples, "tradeops_probe_success", probe="sql", target="writer") == 0  # read-only transaction
    connection = await asyncpg.connect(postgres_dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass('sneaky')") is None
    finally:
        await connection.close()


async def test_redis_probe_reports_memory_and_a_zero_maxmemory(tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path, {"redis": [{"name": "cache", "url": redis_url}]})
    client = aioredis.Redis.from_url(redis_url)
    maxmemory = int(str((await client.config_get("maxmemory"))["maxmemory"]))
    await client.aclose()
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_redis_memory_used_bytes", instance_name="cache") > 0
    assert value(samples, "tradeops_redis_memory_max_bytes", instance_name="cache") == maxmemory
    assert has(samples, "tradeops_redis_evicted_keys_total", instance_name="cache")


async def test_rabbitmq_probe_reads_real_queues_with_filters_and_a_series_cap(tmp_path: Path, amqp_url: str) -> None:
    api = require_tcp(RABBITMQ_API, 15672, "RabbitMQ management API")
    prefix = unique("tradeops.probe")
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        names = [f"{prefix}.q{i}" for i in range(5)]
        for name in names:
            queue = await channel.declare_queue(name, auto_delete=False)
            for _ in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=queue.name)
        consumed = await channel.declare_queue(f"{prefix}.consumed", auto_delete=False)
        await consumed.consume(hold_message, no_ack=False)  # holds the one message it gets: 1 consumer, 1 unacked
        await channel.default_exchange.publish(aio_pika.Message(b"m"), routing_key=consumed.name)
        await channel.declare_queue(f"{prefix}.excluded")
        management = api.replace("guest:guest@", "")
        config = write_config(
            tmp_path,
            {
                "rabbitmq": [
                    {
                        "name": "mgmt",
                        "management_url": management,
                        "include": [f"{prefix}\\..*"],
                        "exclude": [".*excluded"],
                        "max_queues": 5,
                    },
                    {"name": "amqp", "amqp_url": amqp_url, "queues": [names[0], f"{prefix}.missing"]},
                    {"name": "badauth", "management_url": management, "password": "wrong"},
                ]
            },
        )
        async with running_exporter(config) as (url, _):
            # The management API's message counts are refreshed every few seconds.
            for _ in range(100):
                samples = parse(await scrape_text(url))
                # A queue the broker has not counted yet has no sample: unknown, not 0.
                ready = samples.get(mgmt_sample("tradeops_queue_messages_ready", names[0]))
                consumers = samples.get(mgmt_sample("tradeops_queue_consumers", consumed.name))
                held = samples.get(mgmt_sample("tradeops_queue_messages_unacknowledged", consumed.name))
                if ready == 3 and consumers == 1 and held == 1:
                    break
                await asyncio.sleep(0.2)
        reported = [
            labels for name, labels in samples if name == "tradeops_queue_consumers" and ("broker", "mgmt") in labels
        ]
        assert len(reported) == 5
        assert value(samples, "tradeops_probe_series_dropped", probe="rabbitmq", target="mgmt") == 1
        assert value(samples, "tradeops_probe_success", probe="rabbitmq", target="mgmt") == 1
        assert value(samples, "tradeops_queue_consumers", broker="mgmt", vhost="/", queue=consumed.name) == 1
        assert held == 1
        assert value(samples, "tradeops_queue_consumers", broker="mgmt", vhost="/", queue=names[0]) == 0
        assert not has(samples, "tradeops_queue_messages_ready", broker="mgmt", vhost="/", queue=f"{prefix}.excluded")
        assert value(samples, "tradeops_queue_messages_ready", broker="amqp", vhost="/", queue=names[0]) == 3
        assert value(samples, "tradeops_probe_success", probe="rabbitmq", target="amqp") == 0  # one queue missing
        assert value(samples, "tradeops_probe_failures_total", probe="rabbitmq", target="badauth", reason="auth") >= 1
    finally:
        channel = await connection.channel()
        for name in [*names, f"{prefix}.excluded", f"{prefix}.consumed"]:
            await channel.queue_delete(name)
        await connection.close()


async def test_rabbitmq_probe_caps_to_the_first_queues_by_vhost_and_name_and_fails_on_hostile_answers(
    tmp_path: Path, fake_service: tuple[str, dict[str, web.Response | bytes]]
) -> None:
    base, answers = fake_service
    answers["/capped/api/queues"] = (
        b'[{"vhost": "x", "name": "a", "messages_ready": 9}, {"vhost": "/", "name": "c"}, "not a queue", null,'
        b' {"vhost": "/", "name": 7}, {"vhost": "/"},'
        b' {"vhost": "/", "name": "b", "messages_ready": null, "consumers": 2},'
        b' {"vhost": "/", "name": "a", "messages_ready": 5, "messages_unacknowledged": 1}]'
    )
    answers["/words/api/queues"] = b'[{"vhost": "/", "name": "a", "messages_ready": "lots"}]'
    answers["/object/api/queues"] = b'{"error": "not a list"}'
    answers["/garbage/api/queues"] = b"[{"
    answers["/nostats/api/queues"] = b'[{"vhost": "/", "name": "a"}, {"vhost": "/", "name": "b", "consumers": null}]'
    probes = [
        {"name": name, "management_url": f"{base}/{name}", **({"max_queues": 2} if name == "capped" else {})}
        for name in ("capped", "words", "object", "garbage", "nostats")
    ]
    async with running_exporter(write_config(tmp_path, {"rabbitmq": probes})) as (url, _):
        samples = parse(await scrape_text(url))
    kept = sorted(
        dict(labels)["queue"] + "@" + dict(labels)["vhost"]
        for name, labels in samples
        if name.startswith("tradeops_queue_") and ("broker", "capped") in labels
    )
    assert kept == ["a@/", "a@/", "b@/"]  # a: ready and unacknowledged; b: consumers
    assert value(samples, "tradeops_queue_messages_ready", broker="capped", vhost="/", queue="a") == 5
    assert value(samples, "tradeops_queue_messages_unacknowledged", broker="capped", vhost="/", queue="a") == 1
    assert not has(samples, "tradeops_queue_consumers", broker="capped", vhost="/", queue="a")
    # b: the counts the broker did not give (null, missing) are unknown, so left out, never 0.
    assert not has(samples, "tradeops_queue_messages_ready", broker="capped", vhost="/", queue="b")
    assert not has(samples, "tradeops_queue_messages_unacknowledged", broker="capped", vhost="/", queue="b")
    assert value(samples, "tradeops_queue_consumers", broker="capped", vhost="/", queue="b") == 2
    assert value(samples, "tradeops_probe_series_dropped", probe="rabbitmq", target="capped") == 2
    assert value(samples, "tradeops_probe_success", probe="rabbitmq", target="capped") == 1
    for broken, reason in (("words", "bad_result"), ("object", "bad_json"), ("garbage", "bad_json")):
        assert value(samples, "tradeops_probe_success", probe="rabbitmq", target=broken) == 0
        assert value(samples, "tradeops_probe_failures_total", probe="rabbitmq", target=broken, reason=reason) == 1
        assert not has(samples, "tradeops_queue_messages_ready", broker=broken)
    # A broker that keeps no statistics lists its queues without a count: no count is made up, and the probe fails.
    assert not any(name.startswith("tradeops_queue_") and ("broker", "nostats") in labels for name, labels in samples)
    assert value(samples, "tradeops_probe_success", probe="rabbitmq", target="nostats") == 0
    failures = value(
        samples, "tradeops_probe_failures_total", probe="rabbitmq", target="nostats", reason="no_statistics"
    )
    assert failures == 1


async def test_backup_probe_handles_fresh_missing_empty_and_truncated_sets(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "a.sql.gz").write_bytes(gzip.compress(b"old"))
    os.utime(fresh / "a.sql.gz", (1_000_000, 1_000_000))
    (fresh / "b.sql.gz").write_bytes(gzip.compress(b"select 1;" * 1000))
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "c.sql.gz").write_bytes(gzip.compress(b"x" * 50_000)[:40])
    config = write_config(
        tmp_path,
        {
            "backups": [
                {"name": "fresh", "path_glob": f"{fresh}/*.sql.gz", "integrity": "gzip"},
                {"name": "missing", "path_glob": f"{tmp_path}/nowhere/*.sql.gz"},
                {"name": "empty", "path_glob": f"{empty}/*.sql.gz"},
                {"name": "truncated", "path_glob": f"{truncated}/*.sql.gz", "integrity": "gzip"},
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_backup_files", set="fresh") == 2
    assert (
        value(samples, "tradeops_backup_newest_timestamp_seconds", set="fresh") == (fresh / "b.sql.gz").stat().st_mtime
    )
    assert value(samples, "tradeops_backup_newest_intact", set="fresh") == 1
    assert value(samples, "tradeops_probe_success", probe="backup", target="missing") == 0
    assert value(samples, "tradeops_backup_files", set="empty") == 0
    assert not has(samples, "tradeops_backup_newest_timestamp_seconds", set="empty")
    assert value(samples, "tradeops_backup_newest_intact", set="truncated") == 0


async def test_an_unreadable_backup_directory_fails_the_probe(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any directory: an unreadable one cannot be made here")
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    config = write_config(tmp_path, {"backups": [{"name": "unreadable", "path_glob": f"{unreadable}/*.gz"}]})
    unreadable.chmod(0)
    try:
        async with running_exporter(config) as (url, _):
            samples = parse(await scrape_text(url))
    finally:
        unreadable.chmod(0o755)
    assert value(samples, "tradeops_probe_success", probe="backup", target="unreadable") == 0
    assert (
        value(samples, "tradeops_probe_failures_total", probe="backup", target="unreadable", reason="unreadable") == 1
    )


async def test_command_probe_reports_exit_code_numbers_and_pm2_style_json(tmp_path: Path) -> None:
    pm2 = tmp_path / "pm2"
    pm2.write_text(
        textwrap.dedent(
            """\
            #!/bin/sh
            echo '[{"name": "api", "pm2_env": {"restart_time": 4, "status": "online"}, "monit": {"memory": 1000}},
                   {"name": "worker", "pm2_env": {"restart_time": 0}, "monit": {"memory": 5}}]'
            """
        )
    )
    pm2.chmod(0o755)
    config = write_config(
        tmp_path,
        {
            "command": [
                {
                    "name": "pm2",
                    "argv": [str(pm2), "jlist"],
                    "output": "json",
                    "json_values": {
                        "label_field": "name",
                        "value_fields": {"restarts": "pm2_env.restart_time", "memory_bytes": "monit.memory"},
                    },
                },
                {"name": "backup", "argv": [sys.executable, "-c", "import sys; sys.exit(3)"]},
                {"name": "number", "argv": [sys.executable, "-c", "print(42.5)"], "output": "number"},
                {"name": "garbage", "argv": [sys.executable, "-c", "print('nope')"], "output": "number"},
                {"name": "slow", "argv": [sys.executable, "-c", "import time; time.sleep(60)"], "timeout_seconds": 0.5},
                {"name": "absent", "argv": [str(tmp_path / "no-such-program")]},
                {"name": "injection", "argv": ["/bin/echo", "$(touch " + str(tmp_path / "pwned") + ")"]},
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_command_value", command="pm2", item="api", field="restarts") == 4
    assert value(samples, "tradeops_command_value", command="pm2", item="worker", field="memory_bytes") == 5
    assert value(samples, "tradeops_command_exit_code", command="backup") == 3
    assert value(samples, "tradeops_command_value", command="number", item="", field="value") == 42.5
    assert value(samples, "tradeops_probe_success", probe="command", target="garbage") == 0
    assert value(samples, "tradeops_probe_failures_total", probe="command", target="slow", reason="timeout") == 1
    assert value(samples, "tradeops_probe_failures_total", probe="command", target="absent", reason="spawn") == 1
    assert not (tmp_path / "pwned").exists()


async def test_output_passes_promtool_check_metrics(tmp_path: Path, postgres_dsn: str, redis_url: str) -> None:
    promtool = require_binary("promtool")
    config = write_config(
        tmp_path,
        {
            "postgres": [{"name": "main", "dsn": postgres_dsn}],
            "redis": [{"name": "cache", "url": redis_url}],
            "backups": [{"name": "none", "path_glob": f"{tmp_path}/*.gz", "integrity": "gzip"}],
            "service_health": [{"name": "down", "url": f"http://127.0.0.1:{refused_port()}/health"}],
        },
    )
    async with running_exporter(config) as (url, _):
        text = await scrape_text(url)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


async def test_reload_swaps_probes_and_an_invalid_file_keeps_the_old_ones(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    async with running_exporter(config, lifecycle=True) as (url, _), aiohttp.ClientSession() as http:
        write_config(tmp_path, {"backups": [{"name": "second", "path_glob": f"{tmp_path}/*.gz"}]})
        async with http.post(f"{url}/-/reload") as response:
            assert response.status == 200
        samples = parse(await scrape_text(url))
        assert has(samples, "tradeops_backup_files", set="second")
        assert not has(samples, "tradeops_backup_files", set="first")
        config.write_text("probes:\n  backups:\n    - {name: third, colour: red}\n")
        async with http.post(f"{url}/-/reload") as response:
            assert response.status == 500
            body = await response.json()
            assert any("colour" in line for line in body["details"])
        samples = parse(await scrape_text(url))
        assert has(samples, "tradeops_backup_files", set="second")
        assert value(samples, "tradeops_exporter_config_last_reload_successful") == 0


async def test_sighup_reloads_the_running_exporter_process(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        shutil.which("tradeops-exporter") or sys.executable,
        *([] if shutil.which("tradeops-exporter") else ["-m", "exporter.main"]),
        "--config.file",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        await asyncio.wait_for(process.stderr.readline(), 30)
        write_config(tmp_path, {"backups": [{"name": "second", "path_glob": f"{tmp_path}/*.gz"}]})
        process.send_signal(1)  # SIGHUP
        for _ in range(100):
            samples = parse(await scrape_text(f"http://127.0.0.1:{port}"))
            if has(samples, "tradeops_backup_files", set="second"):
                break
            await asyncio.sleep(0.1)
        assert has(samples, "tradeops_backup_files", set="second")
    finally:
        process.terminate()
        await process.wait()
    assert process.returncode == 0
