"""Real containers standing in for platform services, run by a Docker engine (blocking calls in threads)."""

from __future__ import annotations

import asyncio
import contextlib

import docker.errors
from docker.client import DockerClient

SANDBOX_LABEL = "io.tradeops.sandbox"


async def ensure_running(client: DockerClient, name: str, service: str, image: str) -> None:
    """Create (if missing) and start a long-running container for a simulated service."""

    def _ensure() -> None:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            container = client.containers.create(
                image,
                # A service that exits on SIGTERM, as a real one does (a bare `sleep` as PID 1 ignores it, so each
                # stop or restart would wait Docker's 10 s before SIGKILL).
                ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"],
                name=name,
                network_mode="host",
                labels={SANDBOX_LABEL: "1", "com.docker.compose.service": service},
            )
        container.reload()
        if container.status != "running":
            container.start()

    await asyncio.to_thread(_ensure)


async def is_running(client: DockerClient, name: str) -> bool:
    """Return whether the named container exists and is running."""

    def _running() -> bool:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return False
        return bool(container.status == "running")

    return await asyncio.to_thread(_running)


async def started_at(client: DockerClient, name: str) -> str:
    """Return when the named container last started (Docker's StartedAt; empty when it does not exist)."""

    def _started() -> str:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return ""
        return str(container.attrs.get("State", {}).get("StartedAt", ""))

    return await asyncio.to_thread(_started)


async def stop(client: DockerClient, name: str) -> None:
    """Stop the named container (a no-op when it is already stopped)."""
    await asyncio.to_thread(lambda: client.containers.get(name).stop(timeout=1))


async def start(client: DockerClient, name: str) -> None:
    """Start the named container."""
    await asyncio.to_thread(lambda: client.containers.get(name).start())


async def remove(client: DockerClient, name: str) -> None:
    """Remove the named container, running or not; a missing one is fine."""

    def _remove() -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)

    await asyncio.to_thread(_remove)
