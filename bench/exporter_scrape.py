"""Scrape latency and CPU of tradeops-exporter (MasterTrade profile, 1,000 RabbitMQ queues, 50 collectors,
real PostgreSQL, Redis and RabbitMQ) beside the peers scraped for the same signals in the same run:
prometheus-postgres-exporter, prometheus-redis-exporter and the RabbitMQ management API. Prints figures;
asserts nothing."""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import redis.asyncio as aioredis
import yaml
from sandbox.app import Sandbox
from sandbox.profiles import MASTERTRADE
from sandbox.settings import SandboxSettings

from common.web import free_ports
from exporter.probes.rabbitmq import QUEUE_QUERY

SCRAPES = 200
SEED = 20261201  # the rounds' order: the same in every run
QUEUES = 1000
COLLECTORS = 50
POSTGRES = os.environ.get("TRADEOPS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
RABBITMQ_API = "http://127.0.0.1:15672"
QUEUE_PREFIX = "tradeops.bench."


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def interleaved(calls: dict[str, Callable[[], Awaitable[object]]], rounds: int) -> dict[str, list[float]]:
    """Run every call once per round, one after another in an order shuffled for each round, for `rounds`
    rounds; return each one's durations in ms. Interleaved, so that every figure is taken under the same
    conditions of this (noisy, shared) machine; shuffled, so that no call always follows the same one."""
    durations: dict[str, list[float]] = {name: [] for name in calls}
    shuffler = random.Random(SEED)
    names = list(calls)
    for _ in range(rounds):
        shuffler.shuffle(names)
        for name in names:
            call = calls[name]
            started = time.perf_counter()
            await call()
            durations[name].append((time.perf_counter() - started) * 1000)
    return durations


PROBE_DURATION = re.compile(rb"^tradeops_probe_duration_seconds\{[^}]*\} (\S+)$", re.MULTILINE)
SCRAPE_DURATION = re.compile(rb"^tradeops_exporter_scrape_duration_seconds (\S+)$", re.MULTILINE)


def probe_phase(body: bytes) -> tuple[float, float, float]:
    """From one scrape's own metrics: the probing phase, the slowest probe and all probes added up (seconds)."""
    durations = [float(value) for value in PROBE_DURATION.findall(body)]
    match = SCRAPE_DURATION.search(body)
    if match is None or not durations:
        raise RuntimeError("scrape without tradeops_exporter_scrape_duration_seconds or probe durations")
    return float(match.group(1)), max(durations), sum(durations)


def summary(durations: list[float]) -> tuple[float, float]:
    """Median and p99 of durations."""
    return statistics.median(durations), statistics.quantiles(durations, n=100)[98]


async def scrape_of(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> Callable[[], Awaitable[bytes]]:
    """A call that GETs url and returns the body, failing on any status but 200."""

    async def call() -> bytes:
        async with http.get(url, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")
            return body

    return call


async def wait_up(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


async def ignore_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that takes nothing (the bench publishes no messages)."""


async def main() -> None:
    for program in ("prometheus-postgres-exporter", "prometheus-redis-exporter"):
        if shutil.which(program) is None:
            sys.exit(f"{program} missing: apt-get install -y {program}")
    work = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    *service_ports, control_port, exporter_port, pg_port, redis_port = free_ports(len(MASTERTRADE.services) + 4)
    ports = {s.name: port for s, port in zip(MASTERTRADE.services, service_ports, strict=True)}
    sandbox = Sandbox(
        SandboxSettings(
            ports=ports,
            control_port=control_port,
            postgres_dsn=POSTGRES.rsplit("/", 1)[0] + "/tradeops_bench",
            backup_root=work / "backups",
            collectors=COLLECTORS,
        )
    )
    await sandbox.start()
    connection = await aio_pika.connect(AMQP)
    channel = await connection.channel()
    names = [f"{QUEUE_PREFIX}{n:04d}" for n in range(QUEUES)]
    for name in names:  # each with a consumer, as a platform's queues have
        queue = await channel.declare_queue(name, auto_delete=False)
        await queue.consume(ignore_message)
    profile = yaml.safe_load(Path("deploy/profiles/mastertrade/exporter.yml").read_text())
    probes = profile["probes"]
    for probe in probes["service_health"]:
        probe["url"] = f"http://127.0.0.1:{ports[probe['name']]}/health"
    probes["collectors"][0]["url"] = f"http://127.0.0.1:{ports['market_data']}/health/collectors"
    probes["strategy_generation"][0]["dsn"] = sandbox.settings.postgres_dsn
    for probe in probes["backups"]:
        probe["path_glob"] = probe["path_glob"].replace("/var/lib/tradeops-sandbox/backups", str(work / "backups"))
    probes["rabbitmq"][0]["include"] = ["tradeops\\.bench\\..*", "strategy_service\\..*"]
    probes["postgres"][0]["databases"] = ["tradeops_bench"]
    (work / "exporter.yml").write_text(yaml.safe_dump(profile))
    log = (work / "peers.log").open("wb")
    tradeops = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter.main",
        "--config.file",
        str(work / "exporter.yml"),
        "--web.listen-address",
        f"127.0.0.1:{exporter_port}",
        "--log.level",
        "error",
        stdout=log,
        stderr=log,
    )
    pg_exporter = await asyncio.create_subprocess_exec(
        "prometheus-postgres-exporter",
        f"--web.listen-address=127.0.0.1:{pg_port}",
        env={**os.environ, "DATA_SOURCE_NAME": POSTGRES + "?sslmode=disable"},
        stdout=log,
        stderr=log,
    )
    redis_exporter = await asyncio.create_subprocess_exec(
        "prometheus-redis-exporter",
        "-redis.addr",
        "redis://127.0.0.1:6379",
        "-web.listen-address",
        f"127.0.0.1:{redis_port}",
        stdout=log,
        stderr=log,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for url in (
                f"http://127.0.0.1:{exporter_port}/metrics",
                f"http://127.0.0.1:{pg_port}/metrics",
                f"http://127.0.0.1:{redis_port}/metrics",
            ):
                await wait_up(http, url)
            await asyncio.sleep(6)  # the management API counts new queues after its stats interval
            headers = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
            scrape_tradeops = await scrape_of(http, f"http://127.0.0.1:{exporter_port}/metrics", headers=headers)
            bodies: list[bytes] = []

            async def tradeops_scrape() -> bytes:
                bodies.append(await scrape_tradeops())  # read after the run, not while timed
                return bodies[-1]

            lines = (await tradeops_scrape()).decode().splitlines()
            queue_series = sum(1 for line in lines if line.startswith("tradeops_queue_messages_ready{"))
            collector_series = sum(1 for line in lines if line.startswith("tradeops_collector_circuit_breaker_open{"))
            consumers_seen = sum(
                float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("tradeops_queue_consumers{") and QUEUE_PREFIX in line
            )
            guest = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}
            # The peer: what a RabbitMQ exporter reads. The floor: the exact, cheaper request tradeops makes.
            rabbitmq_api = await scrape_of(http, f"{RABBITMQ_API}/api/queues", headers=guest)
            rabbitmq_queues = await scrape_of(http, f"{RABBITMQ_API}/api/queues?{QUEUE_QUERY}", headers=guest)
            # For comparison only: the listing without statistics, faster, but it has no consumer counts.
            rabbitmq_without_stats = await scrape_of(
                http,
                f"{RABBITMQ_API}/api/queues?{QUEUE_QUERY}&disable_stats=true&enable_queue_totals=true",
                headers=guest,
            )
            peers = {
                "prometheus-postgres-exporter": await scrape_of(http, f"http://127.0.0.1:{pg_port}/metrics"),
                "prometheus-redis-exporter": await scrape_of(http, f"http://127.0.0.1:{redis_port}/metrics"),
                "RabbitMQ management /api/queues": rabbitmq_api,
            }
            pool = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=1)
            client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")

            async def pg_round_trip() -> object:
                return await pool.fetch("SELECT state, count(*) FROM pg_stat_activity GROUP BY 1")

            async def redis_round_trip() -> object:
                return await client.info()

            collectors = await scrape_of(http, f"http://127.0.0.1:{ports['market_data']}/health/collectors")
            backends: dict[str, Callable[[], Awaitable[object]]] = {
                "PostgreSQL pg_stat_activity": pg_round_trip,
                "Redis INFO": redis_round_trip,
                "RabbitMQ /api/queues?columns=... (as tradeops asks)": rabbitmq_queues,
                "collectors endpoint": collectors,
            }
            cpu_before = cpu_seconds(tradeops.pid)  # the exporter is idle while the others are measured
            alternatives = {"RabbitMQ /api/queues?...&disable_stats=true": rabbitmq_without_stats}
            measured = await interleaved({"tradeops": tradeops_scrape, **peers, **backends, **alternatives}, SCRAPES)
            cpu_per_scrape = (cpu_seconds(tradeops.pid) - cpu_before) / SCRAPES * 1000
            tradeops_ms = measured["tradeops"]
            probing = [probe_phase(body) for body in bodies[1:]]  # the first body is the warm-up's
            peer_ms = {name: measured[name] for name in peers}
            backend_ms = {name: measured[name] for name in backends}
            await pool.close()
            await client.aclose()

        median, p99 = summary(tradeops_ms)
        print(f"tradeops-exporter, MasterTrade profile: {queue_series} queue series, {collector_series} collectors,")
        print(f"  {consumers_seen:.0f} of the {QUEUES} bench consumers reported")
        print(f"  {SCRAPES} sequential scrapes, interleaved with the peers and backends below in shuffled rounds:")
        print(f"  median {median:.1f} ms, p99 {p99:.1f} ms,")
        print(f"  CPU {cpu_per_scrape:.1f} ms per scrape")
        phase = statistics.median(seconds for seconds, _, _ in probing) * 1000
        slowest_probe = statistics.median(longest for _, longest, _ in probing) * 1000
        probes_added = statistics.median(added for _, _, added in probing) * 1000
        print(
            f"  probing (exporter's own figures, medians): {phase:.1f} ms for all probes at once; the slowest probe "
            f"{slowest_probe:.1f} ms, all probes' durations added up {probes_added:.1f} ms; the rest of the scrape, "
            f"{median - phase:.1f} ms, is building and rendering the samples and sending them"
        )
        print("peers scraped for the same signals (same run):")
        peer_sum = 0.0
        for name, durations in peer_ms.items():
            peer_median, peer_p99 = summary(durations)
            peer_sum += peer_median
            print(f"  {name:<36} median {peer_median:7.1f} ms, p99 {peer_p99:7.1f} ms")
        print(f"  peers added up (medians): {peer_sum:.1f} ms -> tradeops / peers = {median / peer_sum:.2f}")
        print("single backend round trips (the floor for a concurrent scrape):")
        slowest = 0.0
        for name, durations in backend_ms.items():
            backend_median, _ = summary(durations)
            slowest = max(slowest, backend_median)
            print(f"  {name:<52} median {backend_median:7.1f} ms")
        print(
            f"  slowest single backend: {slowest:.1f} ms -> tradeops / slowest = {median / slowest:.2f} (target <= 1.5)"
        )
        for name in alternatives:
            alternative, _ = summary(measured[name])
            print(f"  not asked, for comparison: {name} (no consumer counts): {alternative:.1f} ms")
    finally:
        for process in (tradeops, pg_exporter, redis_exporter):
            process.terminate()
            await process.wait()
        log.close()
        await channel.close()  # its consumers go with it: a queue deleted under one cancels it noisily
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
        await connection.close()
        await sandbox.stop()


if __name__ == "__main__":
    asyncio.run(main())
