"""tradeops-exporter at scale (issue 23): the shipped MasterTrade profile against real PostgreSQL, Redis, RabbitMQ
(10,000 extra queues, each with a consumer, on a RabbitMQ node of the bench's own, so that nobody else's management
API lists them meanwhile), the Docker engine and a sandbox with 200 collectors. Prints, from one
run: the median full scrape beside the slowest single backend's round trip (interleaved, shuffled rounds), the
exporter's RSS over 1,000 scrapes, that `max_queues` bounds the queue series and the scrape says how many it cut,
and where a scrape's time goes (cProfile of the running exporter). Asserts nothing; stops by itself and deletes
its queues. Sizes: TRADEOPS_BENCH_QUEUES, TRADEOPS_BENCH_COLLECTORS, TRADEOPS_BENCH_ROUNDS, TRADEOPS_BENCH_SCRAPES."""

from __future__ import annotations

import asyncio
import io
import os
import pstats
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import redis.asyncio as aioredis
import yaml
from sandbox.app import Sandbox
from sandbox.broker import GUEST, private_rabbitmq
from sandbox.profiles import MASTERTRADE
from sandbox.settings import SandboxSettings

from common.web import free_ports
from exporter.probes.rabbitmq import QUEUE_QUERY

SEED = 20261201  # the rounds' order: the same in every run
QUEUES = int(os.environ.get("TRADEOPS_BENCH_QUEUES", "10000"))
COLLECTORS = int(os.environ.get("TRADEOPS_BENCH_COLLECTORS", "200"))
ROUNDS = int(os.environ.get("TRADEOPS_BENCH_ROUNDS", "40"))  # interleaved timing rounds
SCRAPES = int(os.environ.get("TRADEOPS_BENCH_SCRAPES", "1000"))  # scrapes over which RSS is watched
PROFILED_SCRAPES = 30
CAP = QUEUES // 10  # max_queues in the bound check
TARGET = 1.25
POSTGRES = os.environ.get("TRADEOPS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DOCKER_HOST = os.environ.get("TRADEOPS_DOCKER_HOST", "unix:///run/tradeops-docker/docker.sock")
QUEUE_PREFIX = "tradeops.bench."
CONTAINER = "mastertrade_strategy_bench"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def interleaved(calls: dict[str, Callable[[], Awaitable[object]]], rounds: int) -> dict[str, list[float]]:
    """Run every call once per round, in an order shuffled for each round; return each one's durations in ms.
    Interleaved, so every figure is taken under the same conditions of this shared machine."""
    durations: dict[str, list[float]] = {name: [] for name in calls}
    shuffler = random.Random(SEED)
    names = list(calls)
    for _ in range(rounds):
        shuffler.shuffle(names)
        for name in names:
            started = time.perf_counter()
            await calls[name]()
            durations[name].append((time.perf_counter() - started) * 1000)
    return durations


PROBE_DURATION = re.compile(rb'^tradeops_probe_duration_seconds\{probe="([^"]+)",target="([^"]+)"\} (\S+)$', re.M)
SCRAPE_DURATION = re.compile(rb"^tradeops_exporter_scrape_duration_seconds (\S+)$", re.MULTILINE)


def probe_phase(body: bytes) -> tuple[float, str, float]:
    """From one scrape's own metrics: the probing phase, the slowest probe and its duration (seconds)."""
    durations = {f"{k.decode()}/{t.decode()}": float(v) for k, t, v in PROBE_DURATION.findall(body)}
    match = SCRAPE_DURATION.search(body)
    if match is None or not durations:
        raise RuntimeError("scrape without tradeops_exporter_scrape_duration_seconds or probe durations")
    slowest = max(durations, key=durations.__getitem__)
    return float(match.group(1)), slowest, durations[slowest]


def sample(body: bytes, name: str, **labels: str) -> float | None:
    """The value of one sample of an exposition body (labels in any order), or None."""
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def count_lines(body: bytes, prefix: str, needle: str = "") -> int:
    """How many sample lines start with prefix (and hold needle)."""
    return sum(1 for line in body.decode().splitlines() if line.startswith(prefix) and needle in line)


def call_of(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> Callable[[], Any]:
    """A call that GETs url and returns the body, failing on any status but 200."""

    async def call() -> bytes:
        async with http.get(url, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}")
            return body

    return call


async def wait_up(http: aiohttp.ClientSession, url: str) -> None:
    """Wait until url answers 200 (30 s at most)."""
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


async def create_queues(connection: aio_pika.abc.AbstractConnection, names: list[str]) -> list[Any]:
    """Declare the queues, each with a consumer, on channels of 1,000 consumers; return the channels."""
    channels = []
    for start in range(0, len(names), 1000):
        channel = await connection.channel()
        channels.append(channel)
        for batch in range(start, min(start + 1000, len(names)), 100):
            queues = await asyncio.gather(
                *(channel.declare_queue(n, auto_delete=False) for n in names[batch : batch + 100])
            )
            await asyncio.gather(*(queue.consume(ignore_message) for queue in queues))
    return channels


async def delete_queues(connection: aio_pika.abc.AbstractConnection, names: list[str]) -> None:
    """Delete the bench's queues, 100 at a time."""
    channel = await connection.channel()
    for batch in range(0, len(names), 100):
        await asyncio.gather(*(channel.queue_delete(n) for n in names[batch : batch + 100]))
    await channel.close()


def exporter_config(work: Path, ports: dict[str, int], dsn: str, api: str, max_queues: int) -> dict[str, Any]:
    """The shipped MasterTrade exporter profile pointed at this run's sandbox, queues and container."""
    profile: dict[str, Any] = yaml.safe_load(Path("deploy/profiles/mastertrade/exporter.yml").read_text())
    probes = profile["probes"]
    for probe in probes["service_health"]:
        probe["url"] = f"http://127.0.0.1:{ports[probe['name']]}/health"
    probes["collectors"][0]["url"] = f"http://127.0.0.1:{ports['market_data']}/health/collectors"
    probes["strategy_generation"][0]["dsn"] = dsn
    for probe in probes["backups"]:
        probe["path_glob"] = probe["path_glob"].replace("/var/lib/tradeops-sandbox/backups", str(work / "backups"))
    probes["rabbitmq"][0]["include"] = ["tradeops\\.bench\\..*", "strategy_service\\..*"]
    probes["rabbitmq"][0]["management_url"] = api
    probes["rabbitmq"][0]["max_queues"] = max_queues
    probes["postgres"][0]["databases"] = ["tradeops_bench"]
    for probe in probes.get("containers", []):
        probe["docker_host"] = DOCKER_HOST
    return profile


async def start_exporter(work: Path, config: Path, port: int, profile_to: Path | None = None) -> Any:
    """Start tradeops-exporter (under cProfile when profile_to is given) on port."""
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    log = (work / f"exporter-{port}.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *profiler,
        "-m",
        "exporter.main",
        "--config.file",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "error",
        "--web.enable-lifecycle",
        stdout=log,
        stderr=log,
    )


def print_profile(path: Path, scrapes: int) -> None:
    """Where the profiled exporter's time went: the functions with the most own time, per scrape."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(18)
    print(f"where the time goes (cProfile of the running exporter, {scrapes} scrapes; own time, whole run):")
    table = out.getvalue().split("ncalls", 1)[-1]
    for line in ("ncalls" + table).splitlines():
        if line.strip():
            print("  " + line[:150])
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(r"exporter|prometheus_client|aiohttp.*(client|streams)|json")
    print("cumulative time in the exporter's own steps and its libraries (whole run):")
    table = out.getvalue().split("ncalls", 1)[-1]
    for line in ("ncalls" + table).splitlines()[:30]:
        if line.strip():
            print("  " + line[:150])


async def main() -> None:
    """Run the bench end to end and print its figures."""
    work = Path(tempfile.mkdtemp(prefix="tradeops-bench-"))
    async with private_rabbitmq(work, f"tradeops-bench-{os.getpid()}") as (amqp, api):
        await run(work, amqp, api)


async def run(work: Path, amqp: str, api: str) -> None:
    """The bench against the broker at amqp and api."""
    *service_ports, control_port, exporter_port, profiled_port = free_ports(len(MASTERTRADE.services) + 3)
    ports = {s.name: port for s, port in zip(MASTERTRADE.services, service_ports, strict=True)}
    dsn = POSTGRES.rsplit("/", 1)[0] + "/tradeops_bench"
    sandbox = Sandbox(
        SandboxSettings(
            ports=ports,
            control_port=control_port,
            postgres_dsn=dsn,
            backup_root=work / "backups",
            collectors=COLLECTORS,
            amqp_url=amqp,
            docker_host=DOCKER_HOST,
            containers={"strategy": CONTAINER},
        )
    )
    names = [f"{QUEUE_PREFIX}{n:05d}" for n in range(QUEUES)]
    processes: list[Any] = []
    await sandbox.start()
    connection = await aio_pika.connect(amqp)
    channels: list[Any] = []
    try:
        started = time.perf_counter()
        channels = await create_queues(connection, names)
        print(f"{QUEUES} queues with a consumer each declared in {time.perf_counter() - started:.1f} s")
        config = work / "exporter.yml"
        config.write_text(yaml.safe_dump(exporter_config(work, ports, dsn, api, QUEUES + 1000)))
        tradeops = await start_exporter(work, config, exporter_port)
        processes.append(tradeops)
        metrics_url = f"http://127.0.0.1:{exporter_port}/metrics"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await wait_up(http, metrics_url)
            await asyncio.sleep(6)  # the management API counts new queues after its stats interval
            headers = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
            scrape = call_of(http, metrics_url, headers=headers)
            first = await scrape()
            print(
                f"tradeops-exporter, MasterTrade profile: {count_lines(first, 'tradeops_queue_messages_ready{')} "
                f"queue series, {count_lines(first, 'tradeops_collector_circuit_breaker_open{')} collectors, "
                f"{sum(1 for _ in PROBE_DURATION.finditer(first))} probes; "
                f"{count_lines(first, 'tradeops_queue_consumers{', QUEUE_PREFIX)} bench queues reported, "
                f"failed probes: {re.findall(rb'probe_success{(.*)} 0', first)}"
            )
            await timing(http, scrape, ports, api)
            await rss_over_scrapes(scrape, tradeops.pid)
            await bound(http, scrape, config, work, ports, dsn, api, exporter_port)
            config.write_text(yaml.safe_dump(exporter_config(work, ports, dsn, api, QUEUES + 1000)))
            profiled = work / "exporter.prof"
            profiled_process = await start_exporter(work, config, profiled_port, profile_to=profiled)
            processes.append(profiled_process)
            profiled_url = f"http://127.0.0.1:{profiled_port}/metrics"
            await wait_up(http, profiled_url)
            profiled_scrape = call_of(http, profiled_url, headers=headers)
            for _ in range(PROFILED_SCRAPES):
                await profiled_scrape()
            profiled_process.send_signal(signal.SIGTERM)
            await profiled_process.wait()
            print_profile(profiled, PROFILED_SCRAPES + 1)
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                await process.wait()
        for channel in channels:  # their consumers go with them: a queue deleted under one cancels it noisily
            await channel.close()
        await delete_queues(connection, names)
        await connection.close()
        await sandbox.stop()


async def timing(http: aiohttp.ClientSession, scrape: Callable[[], Any], ports: dict[str, int], api: str) -> None:
    """The full scrape beside each backend's single round trip, interleaved in shuffled rounds."""
    bodies: list[bytes] = []

    async def tradeops_scrape() -> None:
        bodies.append(await scrape())

    pool = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=1)
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    docker = aiohttp.UnixConnector(path=DOCKER_HOST.removeprefix("unix://"))
    async with aiohttp.ClientSession(connector=docker) as engine:

        async def pg_round_trip() -> object:
            return await pool.fetch("SELECT state, count(*) FROM pg_stat_activity GROUP BY 1")

        async def redis_round_trip() -> object:
            return await client.info()

        backends: dict[str, Callable[[], Awaitable[object]]] = {
            "PostgreSQL pg_stat_activity": pg_round_trip,
            "Redis INFO": redis_round_trip,
            "RabbitMQ /api/queues?columns=... (as tradeops asks)": call_of(
                http, f"{api}/api/queues?{QUEUE_QUERY}", headers=GUEST
            ),
            "collectors endpoint": call_of(http, f"http://127.0.0.1:{ports['market_data']}/health/collectors"),
            "Docker /containers/json": call_of(engine, "http://docker/containers/json?all=1"),
        }
        measured = await interleaved({"tradeops": tradeops_scrape, **backends}, ROUNDS)
    await pool.close()
    await client.aclose()
    median = statistics.median(measured["tradeops"])
    p99 = statistics.quantiles(measured["tradeops"], n=100)[98]
    probing = [probe_phase(body) for body in bodies]
    phase = statistics.median(seconds for seconds, _, _ in probing) * 1000
    slowest_probes = {name for _, name, _ in probing}
    slowest_probe = statistics.median(duration for _, _, duration in probing) * 1000
    print(f"{ROUNDS} rounds, each: one full scrape and one round trip to each backend, in shuffled order")
    print(f"  tradeops full scrape: median {median:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"  probing phase {phase:.1f} ms; the slowest probe ({', '.join(sorted(slowest_probes))}) {slowest_probe:.1f}"
        f" ms; after the probes (building, rendering, sending) {median - phase:.1f} ms"
    )
    slowest_name, slowest = "", 0.0
    for name, durations in measured.items():
        if name == "tradeops":
            continue
        backend = statistics.median(durations)
        print(f"  backend {name:<52} median {backend:8.1f} ms")
        if backend > slowest:
            slowest_name, slowest = name, backend
    print(f"  tradeops / slowest backend ({slowest_name}) = {median / slowest:.2f} (target <= {TARGET})")


async def rss_over_scrapes(scrape: Callable[[], Any], pid: int) -> None:
    """The exporter's RSS over SCRAPES more sequential scrapes: after the first 50, every 100, and at the end."""
    readings: list[tuple[int, int]] = []
    started = time.perf_counter()
    for index in range(1, SCRAPES + 1):
        await scrape()
        if index == 50 or index % 100 == 0:
            readings.append((index, rss_bytes(pid)))
            print(f"  ... {index} scrapes, RSS {readings[-1][1] / 2**20:.1f} MiB", flush=True)
    baseline = readings[0][1]
    top = max(rss for _, rss in readings)
    print(f"RSS over {SCRAPES} scrapes ({time.perf_counter() - started:.0f} s):")
    print("  " + ", ".join(f"{index}: {rss / 2**20:.1f} MiB" for index, rss in readings))
    print(
        f"  last / after 50 = {readings[-1][1] / baseline:.3f}, highest / after 50 = {top / baseline:.3f}"
        " (target: within 1.10)"
    )


async def bound(
    http: aiohttp.ClientSession,
    scrape: Callable[[], Any],
    config: Path,
    work: Path,
    ports: dict[str, int],
    dsn: str,
    api: str,
    port: int,
) -> None:
    """Reload with max_queues = CAP: the queue series stop at CAP and the scrape says how many were cut."""
    config.write_text(yaml.safe_dump(exporter_config(work, ports, dsn, api, CAP)))
    async with http.post(f"http://127.0.0.1:{port}/-/reload") as response:
        if response.status != 200:
            raise RuntimeError(f"reload answered {response.status}: {await response.text()}")
    body = await scrape()
    series = count_lines(body, "tradeops_queue_messages_ready{", 'broker="main"')
    dropped = sample(body, "tradeops_probe_series_dropped", probe="rabbitmq", target="main")
    success = sample(body, "tradeops_probe_success", probe="rabbitmq", target="main")
    print(
        f"max_queues {CAP}: {series} queues reported, tradeops_probe_series_dropped {dropped:.0f} "
        f"(of {QUEUES} bench queues and the profile's own), probe_success {success:.0f}"
    )


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens
    asyncio.run(main())
