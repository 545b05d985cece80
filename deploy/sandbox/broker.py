"""A RabbitMQ node of one run's own: its AMQP listener, management API, data and Erlang cookie, so stacks that
run side by side (parallel e2e workers, the bench) never see each other's queues, which carry the runbook's names."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from common.web import free_ports

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's, without its su wrapper
GUEST = {"Authorization": aiohttp.encode_basic_auth("guest", "guest")}


@contextlib.asynccontextmanager
async def private_rabbitmq(work: Path, name: str) -> AsyncIterator[tuple[str, str]]:
    """Run a RabbitMQ node named `name` with the management plugin, its files under `work`, on free loopback
    ports; yield its AMQP URL and management API once the API answers (RuntimeError if it never does within 60 s),
    and stop it, its data removed, when the block ends."""
    amqp_port, api_port, dist_port = free_ports(3)
    base = work / "rabbitmq"
    base.mkdir(parents=True)
    (base / "enabled_plugins").write_text("[rabbitmq_management].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {amqp_port}\nmanagement.tcp.port = {api_port}\nmanagement.tcp.ip = 127.0.0.1\n"
    )
    env = {
        **os.environ,
        "HOME": str(base),  # its own Erlang cookie
        "RABBITMQ_NODENAME": f"{name}@localhost",
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    log = (base / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(RABBITMQ_SERVER, env=env, cwd=base, stdout=log, stderr=log)
    api = f"http://127.0.0.1:{api_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for _ in range(120):
                if process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{api}/api/overview", headers=GUEST) as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError(f"the private RabbitMQ {name} never answered (log: {base / 'server.log'})")
        if process.returncode is not None:
            raise RuntimeError(f"the private RabbitMQ {name} exited {process.returncode} (log: {base / 'server.log'})")
        yield f"amqp://guest:guest@127.0.0.1:{amqp_port}/", api
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
        shutil.rmtree(base / "mnesia", ignore_errors=True)  # the node's queues go with its data
