"""tradeops-exporter at scale (issue 23): the shipped MasterTrade profile against real PostgreSQL, Redis, RabbitMQ
(10,000 extra queues, each with a consumer, on a RabbitMQ node of the bench's own, so that nobody else's management
API lists them meanwhile), the Docker engine and a sandbox with 200 collectors. Prints, from one run: the median
full scrape beside the slowest single backend's round trip (interleaved, shuffled rounds), the tail of both
(p50/p90/p99/max per round, the worst rounds side by side with the exporter's own phases and the garbage
collector's pauses in the exporter and in the bench's own process), the exporter's RSS over 1,000 scrapes, that
`max_queues` bounds the queue series and the scrape says how many it cut, and where a scrape's time goes
(cProfile of the running exporter). Asserts nothing; stops by itself and deletes its queues. Sizes:
TRADEOPS_BENCH_QUEUES, TRADEOPS_BENCH_COLLECTORS, TRADEOPS_BENCH_ROUNDS, TRADEOPS_BENCH_SCRAPES."""

from __future__ import annotations

import asyncio
import contextlib
import csv
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
WORST = 6  # rounds shown side by side
# Logs, in a process, each garbage collection of 1 ms or more and every full one: its start (perf_counter, the
# system-wide monotonic clock, so the bench can place it inside its own scrape windows), duration, generation and
# the process's GC time so far (all collections).
GC_HOOK = """
import gc, time

def log_gc(path):
    log = open(path, "w", buffering=1)
    state = [0.0, 0.0]

    def hook(phase, info):
        now = time.perf_counter()
        if phase == "start":
            state[0] = now
            return
        took = now - state[0]
        state[1] += took
        if took >= 0.001 or info["generation"] == 2:
            log.write(f"{state[0]:.6f} {took:.6f} {info['generation']} {state[1]:.6f}\\n")

    gc.callbacks.append(hook)
"""
EXPORTER_WITH_GC_LOG = (
    GC_HOOK
    + """
import runpy, sys
log_gc(sys.argv.pop(1))
runpy.run_module("exporter.main", run_name="__main__", alter_sys=True)
"""
)


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


def probe_duration(body: bytes, probe: str) -> float:
    """One probe's (kind/target) own duration in one scrape's metrics, in seconds."""
    durations = {f"{k.decode()}/{t.decode()}": float(v) for k, t, v in PROBE_DURATION.findall(body)}
    return durations[probe]


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
    moved = {f"127.0.0.1:{s.port}/": f"127.0.0.1:{ports[s.name]}/" for s in MASTERTRADE.services}
    for probe in probes["service_health"]:  # each at its service's port in this run (Grafana's serves the UI too)
        address = re.search(r"127\.0\.0\.1:\d+/", probe["url"])
        if address is None:
            raise RuntimeError(f"service_health {probe['name']}: no loopback port in {probe['url']}")
        probe["url"] = probe["url"].replace(address.group(0), moved[address.group(0)])
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


async def start_exporter(
    work: Path, config: Path, port: int, profile_to: Path | None = None, gc_log: Path | None = None
) -> Any:
    """Start tradeops-exporter on port: under cProfile when profile_to is given, else logging its garbage
    collections to gc_log when that is given."""
    if profile_to:
        how = ["-m", "cProfile", "-o", str(profile_to), "-m", "exporter.main"]
    elif gc_log:
        how = ["-c", EXPORTER_WITH_GC_LOG, str(gc_log)]
    else:
        how = ["-m", "exporter.main"]
    log = (work / f"exporter-{port}.log").open("wb")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *how,
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
        tradeops = await start_exporter(work, config, exporter_port, gc_log=work / "exporter-gc.log")
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
            await timing(http, scrape, ports, api, work)
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


RABBITMQ_LISTING = "RabbitMQ /api/queues?columns=... (as tradeops asks)"


async def timing(
    http: aiohttp.ClientSession, scrape: Callable[[], Any], ports: dict[str, int], api: str, work: Path
) -> None:
    """The full scrape beside each backend's single round trip, interleaved in shuffled rounds; then the tail."""
    bodies: list[bytes] = []
    windows: list[tuple[float, float]] = []

    async def tradeops_scrape() -> None:
        started = time.perf_counter()
        bodies.append(await scrape())
        windows.append((started, time.perf_counter()))

    pool = await asyncpg.create_pool(POSTGRES, min_size=1, max_size=1)
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    docker = aiohttp.UnixConnector(path=DOCKER_HOST.removeprefix("unix://"))
    namespace: dict[str, Any] = {}
    exec(GC_HOOK, namespace)  # the bench's own process: it reads the bodies and serves the sandbox
    namespace["log_gc"](str(work / "bench-gc.log"))
    async with aiohttp.ClientSession(connector=docker) as engine:

        async def pg_round_trip() -> object:
            return await pool.fetch("SELECT state, count(*) FROM pg_stat_activity GROUP BY 1")

        async def redis_round_trip() -> object:
            return await client.info()

        backends: dict[str, Callable[[], Awaitable[object]]] = {
            "PostgreSQL pg_stat_activity": pg_round_trip,
            "Redis INFO": redis_round_trip,
            RABBITMQ_LISTING: call_of(http, f"{api}/api/queues?{QUEUE_QUERY}", headers=GUEST),
            "collectors endpoint": call_of(http, f"http://127.0.0.1:{ports['market_data']}/health/collectors"),
            "Docker /containers/json": call_of(engine, "http://docker/containers/json?all=1"),
        }
        beam = beam_pid(work)
        await idle_node_cpu(beam)
        usage: dict[str, list[tuple[float, ...]]] = {"tradeops": [], RABBITMQ_LISTING: []}
        calls = {"tradeops": tradeops_scrape, **backends}
        for name, into in usage.items():
            calls[name] = metered(calls[name], beam, into)
        measured = await interleaved(calls, ROUNDS)
    await pool.close()
    await client.aclose()
    print_medians(measured, bodies)
    print_tail(measured, bodies, windows, usage, work)


def print_medians(measured: dict[str, list[float]], bodies: list[bytes]) -> None:
    """The medians: the full scrape, its probing phase, and each backend's round trip against the slowest."""
    median = statistics.median(measured["tradeops"])
    probing = [probe_phase(body) for body in bodies]
    phase = statistics.median(seconds for seconds, _, _ in probing) * 1000
    slowest_probes = {name for _, name, _ in probing}
    slowest_probe = statistics.median(duration for _, _, duration in probing) * 1000
    print(f"{ROUNDS} rounds, each: one full scrape and one round trip to each backend, in shuffled order")
    print(f"  tradeops full scrape: median {median:.1f} ms, p99 {percentile(measured['tradeops'], 99):.1f} ms")
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


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile, interpolated between the values measured, never beyond the largest."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def gc_pauses(path: Path) -> list[tuple[float, float, int, float]]:
    """A GC_HOOK log: each logged collection's start, duration (s), generation and the GC time so far."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(float(a), float(b), int(c), float(d)) for a, b, c, d in rows if d]


def in_window(pauses: list[tuple[float, float, int, float]], window: tuple[float, float]) -> tuple[float, int]:
    """The logged collections' time (ms) started within window, and how many of them were full ones."""
    inside = [(took, generation) for start, took, generation, _ in pauses if window[0] <= start <= window[1]]
    return sum(took for took, _ in inside) * 1000, sum(1 for _, generation in inside if generation == 2)


def beam_pid(work: Path) -> int:
    """The process id of this bench's own RabbitMQ node (its Erlang VM, whose home is under work)."""
    home = f"-home {work / 'rabbitmq'} "
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "beam" in words and home in words:
                return int(cmdline.parent.name)
    raise RuntimeError(f"no Erlang VM with {home}")


def cpu_now(pid: int) -> tuple[float, float, float]:
    """CPU time so far (ms): of process pid, of the whole machine (every core, busy), and stolen by the host."""
    ticks = 1000 / os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    machine = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = machine[0] + machine[1] + machine[2] + machine[5] + machine[6]  # user nice system irq softirq
    return (int(fields[11]) + int(fields[12])) * ticks, busy * ticks, machine[7] * ticks


async def idle_node_cpu(pid: int, seconds: float = 15.0, step: float = 0.5) -> None:
    """The RabbitMQ node's CPU while nobody asks it anything: per step, over seconds (its own background work)."""
    slices = []
    last = cpu_now(pid)[0]
    for _ in range(int(seconds / step)):
        await asyncio.sleep(step)
        now = cpu_now(pid)[0]
        slices.append(now - last)
        last = now
    print(
        f"RabbitMQ node's CPU while idle, ms per {step * 1000:.0f} ms over {seconds:.0f} s: "
        f"{' '.join(f'{ms:.0f}' for ms in slices)} (mean {statistics.mean(slices) / step / 10:.0f} % of a core)"
    )


def metered(call: Callable[[], Awaitable[object]], pid: int, into: list[tuple[float, ...]]) -> Callable[[], Any]:
    """call, recording for each call the CPU (ms) that process pid, the machine and the host's steal used meanwhile."""

    async def wrapped() -> object:
        before = cpu_now(pid)
        result = await call()
        into.append(tuple(after - first for after, first in zip(cpu_now(pid), before, strict=True)))
        return result

    return wrapped


def tail_columns(
    measured: dict[str, list[float]], bodies: list[bytes], windows: list[tuple[float, float]], work: Path
) -> dict[str, list[float]]:
    """Per round (ms): the scrape, RabbitMQ's listing alone, the exporter's own phases and GC pauses."""
    exporter_gc, bench_gc = gc_pauses(work / "exporter-gc.log"), gc_pauses(work / "bench-gc.log")
    rabbit_probe = [probe_duration(body, "rabbitmq/main") * 1000 for body in bodies]
    phase = [probe_phase(body)[0] * 1000 for body in bodies]
    scrape = measured["tradeops"]
    return {
        "full scrape": scrape,
        "RabbitMQ listing alone, same round": measured[RABBITMQ_LISTING],
        "exporter's RabbitMQ probe (inside the scrape)": rabbit_probe,
        "exporter's probing phase": phase,
        "after the probes (build, render, send)": [s - p for s, p in zip(scrape, phase, strict=True)],
        "scrape less its RabbitMQ probe": [s - r for s, r in zip(scrape, rabbit_probe, strict=True)],
        "exporter GC pauses >= 1 ms in the scrape": [in_window(exporter_gc, w)[0] for w in windows],
        "bench process GC pauses >= 1 ms in it": [in_window(bench_gc, w)[0] for w in windows],
    }


def print_tail(
    measured: dict[str, list[float]],
    bodies: list[bytes],
    windows: list[tuple[float, float]],
    usage: dict[str, list[tuple[float, ...]]],
    work: Path,
) -> None:
    """p50/p90/p99/max of each per-round figure, then the worst rounds side by side."""
    columns = tail_columns(measured, bodies, windows, work)
    for name, label in (("tradeops", "the scrape"), (RABBITMQ_LISTING, "the listing alone")):
        columns[f"RabbitMQ node's CPU during {label}"] = [cpu[0] for cpu in usage[name]]
        columns[f"machine's CPU (2 cores) during {label}"] = [cpu[1] for cpu in usage[name]]
        columns[f"host's steal during {label}"] = [cpu[2] for cpu in usage[name]]
    print(f"the tail, per round ({ROUNDS} rounds; p99 interpolated, never beyond the max), ms:")
    print(f"  {'':<48} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name, values in columns.items():
        cells = " ".join(f"{percentile(values, q):8.1f}" for q in (50, 90, 99)) + f" {max(values):8.1f}"
        print(f"  {name:<48} {cells}")
    failed = [i for i, body in enumerate(bodies) if sample(body, "tradeops_probe_success", probe="rabbitmq") == 0]
    print(f"  rounds whose RabbitMQ probe failed (timed out): {failed}")
    print_worst(columns, usage)
    scrape, probe = columns["full scrape"], columns["exporter's RabbitMQ probe (inside the scrape)"]
    alone, cpu_alone = (
        columns["RabbitMQ listing alone, same round"],
        columns["RabbitMQ node's CPU during the listing alone"],
    )
    print(
        f"  across rounds: r(scrape, its RabbitMQ probe) {statistics.correlation(scrape, probe):.2f}, r(scrape, after"
        f" the probes) {statistics.correlation(scrape, columns['after the probes (build, render, send)']):.2f},"
        f" r(its probe, the listing alone in the same round) {statistics.correlation(probe, alone):.2f}; the node's"
        f" CPU per ms of listing alone {statistics.linear_regression(alone, cpu_alone).slope:.2f}"
        f" (r {statistics.correlation(alone, cpu_alone):.2f})"
    )
    with (work / "rounds.csv").open("w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(columns)
        writer.writerows([f"{v:.1f}" for v in row] for row in zip(*columns.values(), strict=True))
    print(f"  every round: {work / 'rounds.csv'}")
    for name in ("exporter", "bench"):
        pauses = gc_pauses(work / f"{name}-gc.log")
        within = [p for p in pauses if windows[0][0] <= p[0] <= windows[-1][1]]
        total = (within[-1][3] - within[0][3] + within[0][1]) * 1000 if within else 0.0
        longest = max((p[1] for p in within), default=0.0) * 1000
        print(
            f"  {name} GC over the rounds: {total:.0f} ms in all (every collection, from the log's running total),"
            f" {sum(1 for p in within if p[2] == 2)} full collections, the longest {longest:.1f} ms"
        )


def print_worst(columns: dict[str, list[float]], usage: dict[str, list[tuple[float, ...]]]) -> None:
    """The WORST slowest scrapes, each beside the same round's other figures and what share of the scrape's excess
    over its median the exporter's RabbitMQ probe's excess over its own median is."""
    scrape, probe = columns["full scrape"], columns["exporter's RabbitMQ probe (inside the scrape)"]
    alone, after = columns["RabbitMQ listing alone, same round"], columns["after the probes (build, render, send)"]
    gc_ms = columns["exporter GC pauses >= 1 ms in the scrape"]
    print(
        "  the worst rounds (ms): round | scrape, its RabbitMQ probe, after the probes, exporter GC | share of the"
        " excess that is the probe's | RabbitMQ alone | node CPU, machine CPU, steal in the scrape | the same alone"
    )
    for i in sorted(range(len(scrape)), key=lambda i: -scrape[i])[:WORST]:
        share = (probe[i] - statistics.median(probe)) / max(1e-9, scrape[i] - statistics.median(scrape))
        cpu, cpu_alone = usage["tradeops"][i], usage[RABBITMQ_LISTING][i]
        print(
            f"  {i:3d} | {scrape[i]:7.0f} {probe[i]:7.0f} {after[i]:5.0f} {gc_ms[i]:4.0f} | {share:4.0%} |"
            f" {alone[i]:7.0f} | {cpu[0]:5.0f} {cpu[1]:5.0f} {cpu[2]:4.0f} | {cpu_alone[0]:5.0f} {cpu_alone[1]:5.0f}"
            f" {cpu_alone[2]:4.0f}"
        )


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
