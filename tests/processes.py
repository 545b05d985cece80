"""Real Prometheus-stack processes and in-process aiohttp stand-ins for tests: started on free loopback ports,
always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from common.web import free_port
from tests.prereqs import require_binary


async def wait_http(url: str, attempts: int = 200) -> None:
    """Wait until a URL answers 200 (bounded), or raise."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(attempts):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


@contextlib.asynccontextmanager
async def served(app: web.Application, *, handler_cancellation: bool = False) -> AsyncIterator[str]:
    """Serve an aiohttp app on a free loopback port until the block ends; yield its base URL (http://127.0.0.1:N)."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def process(
    argv: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a process with output to a log file; terminate (then kill) it on exit."""
    with log.open("wb") as output:
        child = await asyncio.create_subprocess_exec(*argv, stdout=output, stderr=output, env=env)
        try:
            yield child
        finally:
            if child.returncode is None:
                child.terminate()
                try:
                    await asyncio.wait_for(child.wait(), 10)
                except TimeoutError:
                    child.kill()
                    await child.wait()


@contextlib.asynccontextmanager
async def alertmanager(tmp_path: Path, receiver_url: str | None = None, token: str | None = None) -> AsyncIterator[str]:
    """Run a real Alertmanager (optionally routing to a webhook with a bearer token); yield its URL."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    receiver = "null"
    receivers = "  - name: 'null'\n"
    if receiver_url is not None:
        receiver = "tradeops"
        auth = f"\n      http_config:\n        authorization: {{credentials: '{token}'}}" if token else ""
        receivers += (
            f"  - name: tradeops\n    webhook_configs:\n    - url: '{receiver_url}'\n      send_resolved: true{auth}\n"
        )
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"route:\n  receiver: '{receiver}'\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 2s\n"
        f"  repeat_interval: 1h\nreceivers:\n{receivers}"
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    url = f"http://127.0.0.1:{port}"
    async with process(argv, tmp_path / "alertmanager.log"):
        await wait_http(f"{url}/-/ready")
        yield url


@contextlib.asynccontextmanager
async def private_redis(tmp_path: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """A Redis of its own on a fixed port (so a test may stop it and start it again there)."""
    binary = require_binary("redis-server")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    async with process(argv, tmp_path / f"redis-{port}.log") as child:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            await asyncio.sleep(0.05)
        yield child


def postgres_binary(name: str) -> str:
    """Return a PostgreSQL server program (initdb, postgres) from the Debian layout."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        return require_binary(name)  # skips locally, fails under CI, naming the program
    return str(found[-1])


def postgres_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` system user."""
    return "postgres" if os.geteuid() == 0 else None


@contextlib.asynccontextmanager
async def private_postgres_cluster() -> AsyncIterator[Path]:
    """A fresh trust-auth cluster's data directory (outside pytest's root-only tmp tree, which the postgres
    user cannot enter), removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="tradeops-pg-"))
    data_dir = top / "data"
    try:
        data_dir.mkdir()
        if postgres_user() is not None:
            shutil.chown(top, "postgres")
            shutil.chown(data_dir, "postgres")
        data_dir.chmod(0o700)
        await _initdb(data_dir)
        yield data_dir
    finally:
        shutil.rmtree(top, ignore_errors=True)


async def _initdb(data_dir: Path) -> None:
    initdb = await asyncio.create_subprocess_exec(
        postgres_binary("initdb"),
        "-D",
        str(data_dir),
        "-A",
        "trust",
        "-U",
        "postgres",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        user=postgres_user(),
        cwd=data_dir,
    )
    _, error = await initdb.communicate()
    assert initdb.returncode == 0, error.decode()


@contextlib.asynccontextmanager
async def private_postgres(data_dir: Path, port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run the cluster in `data_dir` on a fixed port until the block ends; stop it with a fast shutdown."""
    log = (data_dir.parent / f"postgres-{port}.log").open("ab")
    child = await asyncio.create_subprocess_exec(
        postgres_binary("postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={data_dir}",
        "-c",
        "fsync=off",
        stdout=log,
        stderr=log,
        user=postgres_user(),
        cwd=data_dir,
    )
    log.close()
    try:
        for _ in range(300):
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=2)
                await connection.close()
                break
            await asyncio.sleep(0.05)
        yield child
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                await asyncio.wait_for(child.wait(), 20)
            except TimeoutError:
                child.kill()
                await child.wait()
