"""Real containers standing in for platform services, run by a Docker engine (blocking calls in threads)."""

from __future__ import annotations

import asyncio
import contextlib

import docker.errors
from docker.client import DockerClient

SANDBOX_LABEL = "io.tradeops.sandbox"
# Each container's memory limit (swap included, so a leak grows in memory): tradeops watches a service's usage
# against its own limit (seed 002, Memory Leaks), and a container without one would be left out.
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
LEAK_MARK = "tradeops-memory-leak"  # in the leaking process's command line: how the leak is found again


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
                mem_limit=MEMORY_LIMIT_BYTES,
                memswap_limit=MEMORY_LIMIT_BYTES,
            )
        container.reload()
        if not container.attrs.get("HostConfig", {}).get("Memory"):  # one left by an older sandbox: no limit
            container.update(mem_limit=MEMORY_LIMIT_BYTES, memswap_limit=MEMORY_LIMIT_BYTES)
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


async def start_leak(client: DockerClient, name: str, mib_per_second: int, up_to_mib: int) -> None:
    """Start a process in the running container that holds a buffer growing by mib_per_second MiB a second up
    to up_to_mib MiB, then holds it: busybox `tail` keeps a newline-less stream whole until it ends, and the
    stream never ends. Only a restart of the container (or its process's death) frees it."""
    steps, last = divmod(up_to_mib, mib_per_second)
    chunk = mib_per_second * 1024 * 1024
    script = (
        f": {LEAK_MARK}; {{ i=0; while [ $i -lt {steps} ]; do head -c {chunk} /dev/zero; i=$((i+1)); sleep 1; done; "
        f"head -c {last * 1024 * 1024} /dev/zero; exec sleep 2147483647; }} | tail"
    )

    def _start() -> None:
        client.containers.get(name).exec_run(["sh", "-c", script], detach=True)

    await asyncio.to_thread(_start)


async def leaking(client: DockerClient, name: str) -> bool:
    """Return whether a leak start_leak began still runs in the named container (gone once it restarted)."""

    def _leaking() -> bool:
        try:
            container = client.containers.get(name)
            if container.status != "running":
                return False
            processes = container.top().get("Processes") or []
        except docker.errors.APIError:  # NotFound included; a container stopping between the two calls
            return False
        return any(LEAK_MARK in " ".join(map(str, process)) for process in processes)

    return await asyncio.to_thread(_leaking)


async def restart(client: DockerClient, name: str) -> None:
    """Restart the named container (what the remediator's docker_restart does)."""
    await asyncio.to_thread(lambda: client.containers.get(name).restart(timeout=1))


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
