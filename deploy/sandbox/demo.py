"""`make demo`: start the product on one machine and show what runs where (grows with the product)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import docker
import docker.errors

from sandbox.app import Sandbox
from sandbox.settings import SandboxSettings

DOCKER_HOST = os.environ.get("TRADEOPS_DOCKER_HOST", "unix:///run/tradeops-docker/docker.sock")
STATE = Path(os.environ.get("TRADEOPS_DEMO_DIR", "/var/lib/tradeops-demo"))


def docker_available(host: str) -> bool:
    """Return whether a Docker engine answers at host."""
    try:
        client = docker.DockerClient(base_url=host, timeout=5)
        client.ping()
        client.close()
    except (docker.errors.DockerException, OSError):
        return False
    return True


async def run(args: argparse.Namespace) -> int:
    """Start the sandbox, print where everything is, and wait for Ctrl-C (or exit at once with --no-wait)."""
    has_docker = docker_available(DOCKER_HOST)
    settings = SandboxSettings(
        backup_root=STATE / "backups",
        docker_host=DOCKER_HOST if has_docker else None,
        containers={"strategy": "tradeops-demo-strategy"} if has_docker else {},
    )
    sandbox = Sandbox(settings)
    await sandbox.start()
    try:
        print("tradeops demo: the MasterTrade sandbox is running")
        for name, url in sandbox.urls().items():
            print(f"  {name:<16} {url}")
        if not has_docker:
            print(f"  (no Docker engine at {DOCKER_HOST}: the strategy service runs without a container)")
        print(
            'Inject a fault:  curl -X POST -d \'{"service": "risk_manager"}\' '
            + sandbox.urls()["chaos"]
            + "/service_down"
        )
        if args.no_wait:
            return 0
        print("Ctrl-C stops everything.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await sandbox.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `make demo`."""
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--no-wait", action="store_true", help="start, print, stop (a smoke check)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
