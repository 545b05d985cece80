"""Urgent first (issue 19's figures): how long an alert that needs action waits for it, black-box, against a real
tradeops-remediator process (embedded: SQLite audit, memory state) on loopback. Prints figures; asserts nothing.

- Storm: 10,000 P3 warnings in 100-alert payloads from 8 concurrent senders, a P0 alert (its own payload) sent
  once half the payloads are answered. The P0's webhook-send -> action-start (a loopback recorder's receive
  time minus the P0 POST's start, both CLOCK_MONOTONIC on this machine), and when the last storm alert was
  decided (the decisions metric) and audited (its inbox entry marked done in the SQLite audit). Three runs, each
  with a fresh remediator. The storm's rule is an `http_request` to the recorder with a cooldown: the first
  warning acts, every other is denied by the policy (`cooldown`) and escalated (coalesced pages, to a loopback
  recorder as well: nothing leaves the machine).
- Steady: 50 alerts/s for 20 s, one alert per payload, each a new incident whose rule POSTs to the recorder;
  webhook -> action start p50 and p99, beside the floor measured in the same run: a bare aiohttp handler that
  does one SQLite insert (WAL, synchronous=NORMAL) and one loopback HTTP POST to the same recorder.
- Throughput: alerts/s accepted in 100-alert payloads by 8 senders, and the 503s among the answers.

TRADEOPS_BENCH_TREE runs the remediator of another checkout (a `git worktree` of an older commit) with this
bench; TRADEOPS_BENCH_STORMS, _STEADY_SECONDS and _THROUGHPUT_ALERTS shrink the run for a quick check."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

TREE = Path(os.environ.get("TRADEOPS_BENCH_TREE", Path(__file__).resolve().parent.parent))
STORMS = int(os.environ.get("TRADEOPS_BENCH_STORMS", "3"))
STEADY_SECONDS = float(os.environ.get("TRADEOPS_BENCH_STEADY_SECONDS", "20"))
THROUGHPUT_ALERTS = int(os.environ.get("TRADEOPS_BENCH_THROUGHPUT_ALERTS", "20000"))
TOKEN = "bench-token"
SENDERS = 8
STORM_ALERTS = 10_000
PAYLOAD = 100
STEADY_RATE = 50
STEADY_IDS = 2000
P0_IDS = 10

# The recorder: the actions' and the escalations' loopback endpoint. Its own process, so that the stamp of an
# arriving action is not delayed by the senders' event loop.
RECORDER = """
import json, sys, time
from aiohttp import web
stamps = {}
pages = []
async def action(request):
    stamps.setdefault(request.match_info["id"], time.monotonic())
    await request.read()
    return web.json_response({"ok": True})
async def escalate(request):
    pages.append(time.monotonic())
    await request.read()
    return web.json_response({"ok": True})
async def report(request):
    return web.json_response({"stamps": stamps, "pages": len(pages)})
app = web.Application()
app.router.add_post("/action/{id}", action)
app.router.add_post("/escalate", escalate)
app.router.add_get("/stamps", report)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# The floor: what any remediator must do for an alert that needs action, and nothing more: read the payload,
# one durable SQLite insert (WAL, synchronous=NORMAL, as the audit store), the one HTTP call of the action.
FLOOR = """
import json, sqlite3, sys
import aiohttp
from aiohttp import web
db = sqlite3.connect(sys.argv[3], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = NORMAL")
db.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
async def session_ctx(app):
    app["http"] = aiohttp.ClientSession()
    yield
    await app["http"].close()
async def handle(request):
    body = await request.read()
    document = json.loads(body)
    db.execute("INSERT INTO inbox (body) VALUES (?)", (body,))
    for alert in document["alerts"]:
        async with app["http"].post(sys.argv[2] + alert["labels"]["bench_id"], json={}) as response:
            await response.read()
    return web.json_response({"ok": True})
app = web.Application(client_max_size=64 * 1024 * 1024)
app.cleanup_ctx.append(session_ctx)
app.router.add_post("/webhook", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def alert(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """One firing alert with a fingerprint of its own."""
    labels = {"alertname": name, **labels}
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
    }


def payload(alerts: list[dict[str, Any]]) -> bytes:
    """An Alertmanager webhook payload (version 4)."""
    return json.dumps({"version": "4", "status": "firing", "truncatedAlerts": 0, "alerts": alerts}).encode()


def storm_bodies(tag: str, count: int) -> list[bytes]:
    """`count` P3 warnings, new for each tag, in 100-alert payloads."""
    warnings = [
        alert("StormWarning", {"instance": f"{tag}-{i}", "priority": "P3", "severity": "warning"}) for i in range(count)
    ]
    return [payload(warnings[i : i + PAYLOAD]) for i in range(0, count, PAYLOAD)]


def parse(text: str) -> Samples:
    """Exposition text as {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile of values."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def audited(audit_path: Path) -> int | None:
    """Alerts the remediator has finished (inbox entry marked done); None when the schema has no such table."""
    try:
        db = sqlite3.connect(f"file:{audit_path}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT COUNT(*) FROM delivered").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def decided_before(audit_path: Path, p0_id: str) -> int | None:
    """Storm warnings whose decision the audit holds before the P0's (None when the P0 has no decision row)."""
    try:
        db = sqlite3.connect(f"file:{audit_path}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute(
                "SELECT MIN(id) FROM audit WHERE alertname = 'UrgentDown' AND event = 'decision' AND labels LIKE ?",
                (f'%"{p0_id}"%',),
            ).fetchone()
            if row is None or row[0] is None:
                return None
            before = db.execute(
                "SELECT COUNT(*) FROM audit WHERE alertname = 'StormWarning' AND event = 'decision' AND id < ?",
                (row[0],),
            ).fetchone()
            return int(before[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def noise() -> str:
    """How steady the machine is now: the load average and the spread of five timings of one fixed CPU loop."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(300_000))
        timings.append((time.perf_counter() - started) * 1000)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"load average {load}; a fixed CPU loop {min(timings):.1f}-{max(timings):.1f} ms over 5 tries"


class Processes:
    """The subprocesses of one measurement, stopped together."""

    def __init__(self) -> None:
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> int:
        """Start one process; return its pid."""
        process = await asyncio.create_subprocess_exec(
            *args, cwd=cwd, env=env, stderr=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
        )
        self.running.append(process)
        return process.pid

    async def stop(self) -> None:
        """Terminate every process and wait for it."""
        for process in self.running:
            if process.returncode is None:
                process.terminate()
        for process in self.running:
            await process.wait()
        self.running.clear()


async def wait_up(http: aiohttp.ClientSession, url: str) -> None:
    """Wait until url answers below 500."""
    for _ in range(600):
        try:
            async with http.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never came up")


def remediator_config(work: Path, recorder: str) -> dict[str, Any]:
    """Embedded backends; the storm's rule (acts once, then cooldown), the rules that act on every new incident
    (P0 and steady), escalations to the recorder."""
    acting = {
        "action": "http_request",
        "params": {"method": "POST", "url": f"{recorder}/action/{{id}}", "json_body": {}},
        "cooldown_minutes": 0,
        "rate": {"per_minute": 10000, "burst": 10000},
        "retries": 0,
    }
    return {
        "audit_path": str(work / "audit.sqlite3"),
        "allowed_url_prefixes": [f"{recorder}/"],
        "limits": {"actions_per_hour": 100_000, "concurrency": 4, "queue_size": 20_000},
        "escalation": {"webhooks": [{"url": f"{recorder}/escalate"}]},
        "rules": [
            {
                "name": "urgent",
                "matchers": ['alertname="UrgentDown"'],
                **acting,
                "label_params": {"id": {"label": "bench_id", "allowed": [f"p0-{i}" for i in range(P0_IDS)]}},
            },
            {
                "name": "steady",
                "matchers": ['alertname="SteadyAlert"'],
                **acting,
                "label_params": {"id": {"label": "bench_id", "allowed": [f"s{i}" for i in range(STEADY_IDS)]}},
            },
            {
                "name": "storm-warnings",
                "matchers": ['alertname="StormWarning"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{recorder}/action/storm", "json_body": {}},
                "cooldown_minutes": 30,
                "retries": 0,
            },
        ],
    }


class Bench:
    """One remediator (and the recorder) with the HTTP client that drives them."""

    def __init__(self, http: aiohttp.ClientSession, processes: Processes, recorder: str) -> None:
        self.http = http
        self.processes = processes
        self.recorder = recorder
        self.work = Path(tempfile.mkdtemp(prefix="tradeops-bench-urgent-"))
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def start(self) -> None:
        """Start the remediator of TREE and wait until it is ready."""
        (self.work / "remediator.yml").write_text(yaml.safe_dump(remediator_config(self.work, self.recorder)))
        env = {**os.environ, "TRADEOPS_WEBHOOK_TOKEN": TOKEN, "PYTHONPATH": str(TREE)}
        await self.processes.start(
            sys.executable,
            "-m",
            "remediator.main",
            "--config.file",
            str(self.work / "remediator.yml"),
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--log.level",
            "error",
            cwd=TREE,
            env=env,
        )
        await wait_up(self.http, f"{self.url}/-/ready")

    async def metrics(self) -> Samples:
        """The remediator's metrics now."""
        async with self.http.get(f"{self.url}/metrics") as response:
            return parse(await response.text())

    async def post(self, body: bytes) -> int:
        """Send one webhook payload; return the HTTP status."""
        async with self.http.post(f"{self.url}/webhook", data=body, headers=self.headers) as response:
            await response.read()
            return response.status

    async def stamps(self) -> tuple[dict[str, float], int]:
        """The recorder's first arrival time of each action id, and the pages it received."""
        async with self.http.get(f"{self.recorder}/stamps") as response:
            report = await response.json()
        return report["stamps"], report["pages"]


async def send_all(
    bodies: list[bytes], post: Callable[[bytes], Awaitable[int]], after: Callable[[int], None] | None = None
) -> tuple[float, dict[int, int]]:
    """Send bodies from SENDERS concurrent senders; call after(n) once the n-th answer is in; return the seconds
    taken and the count of each HTTP status."""
    pending = list(reversed(bodies))
    statuses: dict[int, int] = {}
    answered = 0

    async def sender() -> None:
        nonlocal answered
        while pending:
            status = await post(pending.pop())
            statuses[status] = statuses.get(status, 0) + 1
            answered += 1
            if after is not None:
                after(answered)

    started = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return time.monotonic() - started, statuses


async def storm(bench: Bench, run: int) -> dict[str, Any]:
    """One storm with a P0 in its middle, on a fresh remediator."""
    bodies = storm_bodies(f"storm{run}", STORM_ALERTS)
    p0_id = f"p0-{run}"
    p0_body = payload([alert("UrgentDown", {"bench_id": p0_id, "priority": "P0", "severity": "critical"})])
    p0: dict[str, float] = {}
    tasks: list[asyncio.Task[None]] = []

    async def send_p0() -> None:
        p0["sent"] = time.monotonic()
        p0["status"] = await bench.post(p0_body)
        p0["answered"] = time.monotonic()

    def after(answered: int) -> None:
        if answered == len(bodies) // 2:
            tasks.append(asyncio.create_task(send_p0()))

    _, pages_before = await bench.stamps()
    started = time.monotonic()
    accept_seconds, statuses = await send_all(bodies, bench.post, after)
    await asyncio.gather(*tasks)
    decided_at = audited_at = None
    audit_path = bench.work / "audit.sqlite3"
    deadline = started + 120
    largest_log = log_bytes(audit_path)
    while (decided_at is None or audited_at is None) and time.monotonic() < deadline:
        largest_log = max(largest_log, log_bytes(audit_path))
        samples = await bench.metrics()
        if decided_at is None and total(samples, "tradeops_remediator_decisions_total", rule="storm-warnings") >= (
            STORM_ALERTS
        ):
            decided_at = time.monotonic()
        done = audited(audit_path)
        if audited_at is None and (done is None or done >= STORM_ALERTS + 1):
            audited_at = time.monotonic() if done is not None else -1.0
        await asyncio.sleep(0.05)
    stamps, pages = await bench.stamps()
    samples = await bench.metrics()
    reasons = {
        dict(labels)["reason"]: int(value)
        for (name, labels), value in samples.items()
        if name == "tradeops_remediator_decisions_total" and value and dict(labels).get("rule") == "storm-warnings"
    }
    return {
        "accept_seconds": accept_seconds,
        "statuses": statuses,
        "p0_ms": (stamps[p0_id] - p0["sent"]) * 1000 if p0_id in stamps else None,
        "p0_answer_ms": (p0["answered"] - p0["sent"]) * 1000,
        "p0_status": p0["status"],
        "decided_s": decided_at - started if decided_at is not None else None,
        "audited_s": audited_at - started if audited_at not in (None, -1.0) else None,
        "reasons": reasons,
        "pages": pages - pages_before,
        "before_p0": decided_before(audit_path, p0_id),
        "largest_log_mib": max(largest_log, log_bytes(audit_path)) / 2**20,
    }


def log_bytes(audit_path: Path) -> int:
    """The size of the audit's write-ahead log now (0 when there is none)."""
    try:
        return audit_path.with_name(audit_path.name + "-wal").stat().st_size
    except FileNotFoundError:
        return 0


async def steady(
    post: Callable[[bytes], Awaitable[int]], recorder_stamps: Callable[[], Awaitable[dict[str, float]]]
) -> tuple[list[float], int]:
    """STEADY_RATE alerts/s for STEADY_SECONDS, one per payload, ids s0, s1...; return webhook -> action start
    in ms for each alert that acted, and the count of non-200 answers."""
    count = int(STEADY_RATE * STEADY_SECONDS)
    sent: dict[str, float] = {}
    errors = 0

    async def one(index: int) -> None:
        nonlocal errors
        bench_id = f"s{index}"
        body = payload([alert("SteadyAlert", {"bench_id": bench_id, "priority": "P2", "severity": "warning"})])
        sent[bench_id] = time.monotonic()
        if await post(body) != 200:
            errors += 1

    tasks = []
    started = time.monotonic()
    for index in range(count):
        await asyncio.sleep(max(0.0, started + index / STEADY_RATE - time.monotonic()))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)
    stamps = await recorder_stamps()
    return [(stamps[i] - t) * 1000 for i, t in sent.items() if i in stamps], errors


def steady_row(name: str, latencies: list[float], expected: int, errors: int) -> str:
    """One printed row of the steady figures."""
    missing = expected - len(latencies)
    note = f" ({missing} never acted, {errors} non-200)" if missing or errors else ""
    return (
        f"  {name:<22} p50 {quantile(latencies, 50):6.2f} ms  p99 {quantile(latencies, 99):6.2f} ms  "
        f"max {max(latencies):6.1f} ms  ({len(latencies)} alerts){note}"
    )


async def main() -> None:
    processes = Processes()
    recorder_port, floor_port = free_ports(2)
    recorder = f"http://127.0.0.1:{recorder_port}"
    print(f"remediator from {TREE}; {noise()}")
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            await processes.start(sys.executable, "-c", RECORDER, str(recorder_port))
            await wait_up(http, f"{recorder}/stamps")
            await run_storms(http, processes, recorder)
            await run_steady(http, processes, recorder, floor_port)
        finally:
            await processes.stop()
    print(f"after: {noise()}")


async def run_storms(http: aiohttp.ClientSession, processes: Processes, recorder: str) -> None:
    """STORMS storms, each on a fresh remediator (the recorder stays)."""
    print(
        f"\nstorm: {STORM_ALERTS} P3 warnings in {PAYLOAD}-alert payloads from {SENDERS} senders, one P0 in the middle"
    )
    print("  (target: the P0's action started <= 250 ms after its webhook)")
    for run in range(STORMS):
        bench = Bench(http, processes, recorder)
        await bench.start()
        figures = await storm(bench, run)
        rate = STORM_ALERTS / figures["accept_seconds"]
        p0 = f"{figures['p0_ms']:.1f} ms" if figures["p0_ms"] is not None else "never acted"
        decided = f"{figures['decided_s']:.2f} s" if figures["decided_s"] is not None else "not within 120 s"
        done = f"{figures['audited_s']:.2f} s" if figures["audited_s"] is not None else "n/a"
        print(
            f"  run {run + 1}: P0 webhook -> action start {p0} (its webhook answered in "
            f"{figures['p0_answer_ms']:.1f} ms, {figures['p0_status']}); storm accepted in "
            f"{figures['accept_seconds']:.2f} s ({rate:.0f} alerts/s, answers {figures['statuses']}); "
            f"last storm alert decided {decided}, audited {done} after the storm began; "
            f"storm decisions {figures['reasons']}, {figures['before_p0']} of them audited before the P0's; "
            f"pages received {figures['pages']}; largest audit log (WAL) seen {figures['largest_log_mib']:.1f} MiB"
        )
        await stop_remediator(processes)


async def stop_remediator(processes: Processes) -> None:
    """Stop the most recently started process (the remediator) and forget it."""
    process = processes.running.pop()
    process.terminate()
    await process.wait()


async def run_steady(http: aiohttp.ClientSession, processes: Processes, recorder: str, floor_port: int) -> None:
    """Steady rate against the floor then the remediator; then the throughput of the same remediator."""
    bench = Bench(http, processes, recorder)
    await bench.start()
    floor_url = f"http://127.0.0.1:{floor_port}/webhook"
    await processes.start(
        sys.executable, "-c", FLOOR, str(floor_port), f"{recorder}/action/floor-", str(bench.work / "floor.sqlite3")
    )
    await wait_up(http, floor_url)

    async def floor_post(body: bytes) -> int:
        async with http.post(floor_url, data=body, headers=bench.headers) as response:
            await response.read()
            return response.status

    async def stamps_with(prefix: str) -> dict[str, float]:
        stamps, _ = await bench.stamps()
        return {key.removeprefix(prefix): value for key, value in stamps.items() if key.startswith(prefix)}

    count = int(STEADY_RATE * STEADY_SECONDS)
    print(f"\nsteady: {STEADY_RATE} alerts/s for {STEADY_SECONDS:g} s, one alert per payload, each a new incident")
    print("  that acts (an http_request to the recorder); webhook -> action start (target p50 <= 5 ms, p99 <= 20 ms)")
    floor, floor_errors = await steady(floor_post, lambda: stamps_with("floor-"))
    print(steady_row("floor (insert + POST)", floor, count, floor_errors))
    latencies, errors = await steady(bench.post, lambda: stamps_with(""))
    print(steady_row("tradeops-remediator", latencies, count, errors))

    print(
        f"\nthroughput: {THROUGHPUT_ALERTS} alerts in {PAYLOAD}-alert payloads from {SENDERS} senders"
        " (target >= 20,000/s)"
    )
    for run in range(3):
        await drained(bench)
        bodies = storm_bodies(f"throughput{run}", THROUGHPUT_ALERTS)
        seconds, statuses = await send_all(bodies, bench.post)
        depth = (await bench.metrics()).get(("tradeops_remediator_queue_depth", ()), 0)
        print(
            f"  run {run + 1}: {THROUGHPUT_ALERTS / seconds:.0f} alerts/s accepted, answers {statuses} "
            f"(queue_size 20000; queue depth {depth:.0f} right after)"
        )
    await drained(bench)
    print(f"  audit log (WAL) after steady and throughput: {log_bytes(bench.work / 'audit.sqlite3') / 2**20:.1f} MiB")


async def drained(bench: Bench) -> None:
    """Wait until the remediator has taken up every alert it accepted."""
    for _ in range(1200):
        samples = await bench.metrics()
        decided = total(samples, "tradeops_remediator_decisions_total")
        received = total(samples, "tradeops_remediator_alerts_received_total")
        if samples.get(("tradeops_remediator_queue_depth", ()), 1) == 0 and decided >= received:
            return
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
