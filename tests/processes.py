"""Real Prometheus-stack processes for tests: started on free loopback ports, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

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
