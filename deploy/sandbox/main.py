"""`tradeops-sandbox`: run a simulated trading platform on loopback, or write one backup and exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from common.cli import EnvDefaultParser, add_log_and_version_flags
from common.config import validation_details
from common.logs import log_event, setup_logging
from common.web import PortInUseError
from sandbox import backups
from sandbox.app import Sandbox
from sandbox.profiles import PROFILES
from sandbox.settings import SandboxSettings

logger = logging.getLogger("sandbox")


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key or not item:
            raise ValueError(f"{flag} takes NAME=VALUE, got {value!r}")
        result[key] = item
    return result


def build_parser() -> EnvDefaultParser:
    """Return the sandbox's argument parser."""
    parser = EnvDefaultParser(prog="tradeops-sandbox", description="Simulated trading platform with a chaos API.")
    parser.add_flag("--profile", default="mastertrade", help=f"system to simulate: {', '.join(sorted(PROFILES))}")
    parser.add_flag("--host", default="127.0.0.1", help="address every service listens on")
    parser.add_argument("--port", action="append", default=[], help="SERVICE=PORT, repeatable")
    parser.add_flag("--control-port", default="8099", help="port of the chaos API")
    parser.add_flag("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/mastertrade", help="PostgreSQL")
    parser.add_flag("--redis-url", default="redis://127.0.0.1:6379/0", help="Redis")
    parser.add_flag("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/", help="RabbitMQ (AMQP)")
    parser.add_flag("--docker-host", help="Docker engine for --container services (e.g. unix:///run/docker.sock)")
    parser.add_argument("--container", action="append", default=[], help="SERVICE=CONTAINER_NAME, repeatable")
    parser.add_flag("--image", default="tradeops/busybox:latest", help="image for --container services")
    parser.add_flag("--backup-root", default="/var/lib/tradeops-sandbox/backups", help="backup directories' root")
    parser.add_flag("--collectors", help="number of collectors to simulate (default: the profile's)")
    add_log_and_version_flags(parser)
    parser.add_flag("--backup-now", help="write one fresh backup of this set (postgres_daily, ...) and exit")
    return parser


def settings_from_args(args: object) -> SandboxSettings:
    """Build validated settings from parsed arguments, raising ValueError with located problems."""
    ns = vars(args)
    data = {
        "profile": ns["profile"],
        "host": ns["host"],
        "ports": _pairs(ns["port"], "--port"),
        "control_port": ns["control_port"],
        "postgres_dsn": ns["postgres_dsn"],
        "redis_url": ns["redis_url"],
        "amqp_url": ns["amqp_url"],
        "docker_host": ns["docker_host"],
        "containers": _pairs(ns["container"], "--container"),
        "image": ns["image"],
        "backup_root": ns["backup_root"],
        "collectors": ns["collectors"],
    }
    try:
        return SandboxSettings.model_validate(data)
    except ValidationError as error:
        raise ValueError("\n".join(str(d) for d in validation_details(error))) from None


async def serve(sandbox: Sandbox) -> None:
    """Run the sandbox until SIGINT or SIGTERM, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await sandbox.start()
    for name, url in sandbox.urls().items():
        log_event(logger, logging.INFO, "listening", service=name, url=url)
    print("sandbox ready", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tradeops-sandbox`; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        setup_logging(getattr(args, "log.level"), getattr(args, "log.format"))
        settings = settings_from_args(args)
        if args.backup_now:
            if args.backup_now not in backups.BACKUP_SETS:
                raise ValueError(f"unknown backup set {args.backup_now!r}; known: {', '.join(backups.BACKUP_SETS)}")
            path = backups.write_backup(Path(settings.backup_root), args.backup_now)
            print(path)
            return 0
        sandbox = Sandbox(settings)
    except ValueError as error:
        print(f"tradeops-sandbox: {error}", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(sandbox))
    except PortInUseError as error:
        print(f"tradeops-sandbox: cannot start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
