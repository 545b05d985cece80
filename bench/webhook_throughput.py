"""Webhook throughput and p99 latency of tradeops-remediator beside a bare aiohttp handler (the floor), for
payloads of 1, 100 and 1,000 alerts; then a storm of 10,000 distinct alerts. Twice: with the embedded
backends (memory state, SQLite audit) and with the shared ones (Redis state, PostgreSQL audit), in the same
run. Prints figures; asserts nothing.

TRADEOPS_BENCH_REDIS_URL (default redis://127.0.0.1:6379/13) and TRADEOPS_BENCH_POSTGRES_DSN (default the
local server's postgres database; a fresh database is created and dropped) say where the shared ones are."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from common.web import free_ports

FLOOR = """
import sys
from aiohttp import web
async def handle(request):
    await request.json()
    return web.json_response({"ok": True})
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/webhook", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
TOKEN = "bench-token"
CONCURRENCY = 8
REQUESTS = {1: 2000, 100: 200, 1000: 30}
ROUNDS = 9  # this machine varies by up to 2x from minute to minute: medians of nine alternating rounds


def alert(index: int, batch: str) -> dict[str, Any]:
    labels = {"alertname": "BenchAlert", "instance": f"i{batch}-{index}", "priority": "P2"}
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-22T03:00:00Z",
        "fingerprint": hashlib.sha256(json.dumps(labels).encode()).hexdigest()[:16],
    }


def payload(size: int, batch: str) -> bytes:
    body = {"version": "4", "status": "firing", "truncatedAlerts": 0, "alerts": [alert(i, batch) for i in range(size)]}
    return json.dumps(body).encode()


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never came up")


async def load(url: str, size: int, requests: int, tag: str) -> tuple[float, float, int]:
    """Send `requests` payloads of `size` alerts, new ones for each `tag`, with CONCURRENCY workers; return
    alerts/s, p99 ms, errors."""
    bodies = [payload(size, f"{tag}-{n}") for n in range(requests)]
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) >= 2 else latencies[0] * 1000
    return size * requests / elapsed, p99, errors


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text as {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    """The sum of a metric's samples over all its labels."""
    return sum(value for (sample, _), value in samples.items() if sample == name)


async def drained(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Wait until the remediator has decided every accepted alert (the queue empty and, since each bench alert
    matches the one rule, as many decisions as alerts: an empty queue alone leaves the alerts workers hold
    uncounted); return its metrics then."""
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(metrics_url) as response:
                samples = parse(await response.text())
            decided = total(samples, "tradeops_remediator_decisions_total")
            received = total(samples, "tradeops_remediator_alerts_received_total")
            if samples.get(("tradeops_remediator_queue_depth", ()), 1) == 0 and decided >= received:
                return samples
            await asyncio.sleep(0.2)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def shared_backends() -> tuple[dict[str, Any], str]:
    """Config for Redis state and PostgreSQL audit in a fresh database; return it and the database's name."""
    admin_dsn = os.environ.get("TRADEOPS_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("TRADEOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    name = f"tradeops_bench_{os.getpid()}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = admin_dsn.rpartition("/")
    return {
        "state": "redis",
        "state_redis": {"url": redis_url, "key_prefix": "{" + name + "}"},
        "audit": "postgres",
        "audit_postgres": {"dsn": f"{base}/{name}", "pool_size": 8},
    }, name


async def drop_redis_keys(prefix: str) -> None:
    """Delete the run's keys from the shared Redis (incidents are kept for the retention, 90 days)."""
    client = aioredis.Redis.from_url(os.environ.get("TRADEOPS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    batch: list[bytes] = []
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            await client.unlink(*batch)
            batch.clear()
    if batch:
        await client.unlink(*batch)
    await client.aclose()


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(
        os.environ.get("TRADEOPS_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def main() -> None:
    print("== embedded backends: memory state, SQLite audit")
    await run(Path(tempfile.mkdtemp(prefix="tradeops-bench-")), {})
    backends, database = await shared_backends()
    try:
        print("\n== shared backends: Redis state, PostgreSQL audit")
        await run(Path(tempfile.mkdtemp(prefix="tradeops-bench-")), backends)
    finally:
        await drop_database(database)
        await drop_redis_keys(backends["state_redis"]["key_prefix"])


async def run(work: Path, backends: dict[str, Any]) -> None:
    """Measure one remediator configuration against the floor."""
    floor_port, remediator_port = free_ports(2)
    config = {
        "audit_path": str(work / "audit.sqlite3"),
        "limits": {
            "actions_per_hour": 30,
            "concurrency": 4,
            "queue_size": 1_000_000,
            "max_body_bytes": 64 * 1024 * 1024,
        },
        "rules": [
            {
                "name": "bench",
                "matchers": ['alertname="BenchAlert"'],
                "action": "log",
                "cooldown_minutes": 0,
                "rate": {"per_minute": 10000, "burst": 10000},
            }
        ],
        **backends,
    }
    (work / "remediator.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "TRADEOPS_WEBHOOK_TOKEN": TOKEN}
    floor = await asyncio.create_subprocess_exec(sys.executable, "-c", FLOOR, str(floor_port))
    remediator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "remediator.main",
        "--config.file",
        str(work / "remediator.yml"),
        "--web.listen-address",
        f"127.0.0.1:{remediator_port}",
        "--log.level",
        "error",
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_up(f"http://127.0.0.1:{floor_port}/webhook")
        await wait_up(f"http://127.0.0.1:{remediator_port}/-/healthy")
        metrics_url = f"http://127.0.0.1:{remediator_port}/metrics"
        print(f"webhook throughput, {CONCURRENCY} concurrent clients, same machine, same run;")
        print(f"medians of {ROUNDS} rounds, each round the floor then tradeops, each run once the remediator")
        print("has taken up all it had accepted (the ratio's range over the rounds)")
        print("alerts/payload | floor alerts/s | floor p99 ms | tradeops alerts/s | tradeops p99 ms | ratio (range)")
        for size, requests in REQUESTS.items():
            floor_runs, runs, errors = [], [], 0
            for round_number in range(ROUNDS):
                tag = f"{size}-{round_number}"
                # Each run starts with nothing left to decide, so neither competes with the previous backlog.
                await drained(metrics_url)
                floor_runs.append(await load(f"http://127.0.0.1:{floor_port}/webhook", size, requests, tag))
                await drained(metrics_url)
                runs.append(await load(f"http://127.0.0.1:{remediator_port}/webhook", size, requests, tag))
                errors += runs[-1][2]
            floor_rate, floor_p99 = (statistics.median(run[i] for run in floor_runs) for i in (0, 1))
            rate, p99 = (statistics.median(run[i] for run in runs) for i in (0, 1))
            ratios = [run[0] / floor[0] for run, floor in zip(runs, floor_runs, strict=True)]
            note = f"  ({errors} non-200)" if errors else ""
            row = [f"{size}", f"{floor_rate:.0f}", f"{floor_p99:.1f}", f"{rate:.0f}", f"{p99:.1f}"]
            spread = f"{rate / floor_rate:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            print(" | ".join(row) + f" | {spread}{note}")

        print("\nstorm: 10,000 distinct alerts in 100 payloads of 100")
        await drained(metrics_url)  # the storm's own alerts only
        before = rss_kib(remediator.pid)
        started = time.perf_counter()
        storm_rate, _, errors = await load(f"http://127.0.0.1:{remediator_port}/webhook", 100, 100, "storm")
        accepted = time.perf_counter() - started
        samples = await drained(metrics_url)
        processed = time.perf_counter() - started
        executed = samples.get(("tradeops_remediator_decisions_total", (("reason", "executed"), ("rule", "bench"))), 0)
        limited = samples.get(
            ("tradeops_remediator_decisions_total", (("reason", "rate_limited"), ("rule", "bench"))), 0
        )
        received = samples.get(("tradeops_remediator_alerts_received_total", (("status", "firing"),)), 0)
        print(f"  accepted in {accepted:.1f}s ({storm_rate:.0f} alerts/s, {errors} non-200)")
        print(f"  every alert processed {processed:.1f}s after the storm began")
        others = {
            dict(labels)["reason"]: count
            for (name, labels), count in samples.items()
            if name == "tradeops_remediator_decisions_total"
            and count
            and dict(labels)["reason"] not in ("executed", "rate_limited")
        }
        print(f"  received {received:.0f} alerts in all runs; decisions: {executed:.0f} executed (budget 30/hour),")
        print(f"  {limited:.0f} rate_limited (each one recorded in the audit and escalated), other decisions: {others}")
        after = rss_kib(remediator.pid)
        print(f"  remediator RSS: {before / 1024:.0f} MiB before the storm, {after / 1024:.0f} MiB after")
    finally:
        for process in (floor, remediator):
            process.terminate()
            await process.wait()


if __name__ == "__main__":
    asyncio.run(main())
