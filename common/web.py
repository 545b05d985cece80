"""aiohttp helpers both services use: health endpoints, metrics responses and site start-up."""

from __future__ import annotations

import errno
import socket

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


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on host a moment ago (for tests and demos)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
