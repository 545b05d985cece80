"""aiohttp helpers both services use: health endpoints, metrics responses and site start-up."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

from aiohttp import StreamReader, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


async def healthy(_: web.Request) -> web.Response:
    """Answer 200 while the process serves HTTP (Prometheus' /-/healthy)."""
    return web.Response(text="Healthy.\n")


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """Render a registry in the Prometheus text exposition format."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """Build a JSON error body `{"error": message, ...}` with the given status."""
    return web.json_response({"error": message, **extra}, status=status)


async def read_limited(stream: StreamReader, max_bytes: int) -> bytes:
    """Read a body up to max_bytes + 1 bytes, so an oversized body is detected without buffering it whole."""
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        chunk = await stream.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class PortInUseError(RuntimeError):
    """A listen address is already taken by another process."""


async def start_site(runner: web.AppRunner, host: str, port: int, **ssl: object) -> web.TCPSite:
    """Start a TCP site, turning 'address in use' into PortInUseError with the address in the message."""
    site = web.TCPSite(runner, host, port, reuse_address=True, **ssl)  # type: ignore[arg-type]
    try:
        await site.start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PortInUseError(f"{host}:{port} is already in use by another process") from None
        raise
    return site


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on host a moment ago (for tests and demos). It lies below the
    ephemeral range, so an outgoing connection cannot be given it between now and the bind."""
    low, _ = ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.SystemRandom().shuffle(candidates)
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port below the ephemeral range on {host}")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return `count` distinct ports as free_port chooses them."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports
