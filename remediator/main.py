"""`tradeops-remediator`: the Alertmanager webhook that performs the runbook's first responses."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from common.cli import EnvDefaultParser, parse_listen_address
from common.config import ConfigError, validation_details
from common.logs import setup_logging
from common.web import PortInUseError, start_site
from remediator.app import build_engine, load_checked
from remediator.config import RemediatorConfig
from remediator.metrics import RemediatorMetrics
from remediator.payload import WebhookPayload
from remediator.web import Remediator, build_app

DEFAULT_LISTEN = "0.0.0.0:10102"


def build_parser() -> EnvDefaultParser:
    """Return the remediator's argument parser."""
    parser = EnvDefaultParser(prog="tradeops-remediator", description="Alertmanager webhook remediator.")
    parser.add_flag("--config.file", required=True, help="path of the YAML configuration")
    parser.add_flag("--web.listen-address", default=DEFAULT_LISTEN, help="HOST:PORT to serve on")
    parser.add_flag("--log.level", default="info", help="debug, info, warning or error")
    parser.add_switch("--check-config", help="validate the configuration, print located errors, and exit")
    parser.add_flag("--explain", help="print the decision for each alert of this payload file; run nothing")
    return parser


def explain(config: RemediatorConfig, payload_path: Path) -> int:
    """Print one JSON line per alert and rule: the matched rule, the decision and the reason."""
    try:
        payload = WebhookPayload.model_validate_json(payload_path.read_bytes())
    except OSError as error:
        print(f"tradeops-remediator: cannot read {payload_path}: {error}", file=sys.stderr)
        return 1
    except ValidationError as error:
        for detail in validation_details(error):
            print(f"{payload_path}: {detail}", file=sys.stderr)
        return 1
    engine = build_engine(config.model_copy(update={"audit_path": Path(":memory:")}), RemediatorMetrics())
    for alert in payload.alerts:
        for plan in engine.explain(alert):
            print(json.dumps(plan.describe(alert)))
    return 0


async def serve(remediator: Remediator, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM; SIGHUP reloads the configuration, keeping all state."""
    runner = web.AppRunner(build_app(remediator), access_log=None)
    await runner.setup()
    tls = remediator.config.tls
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert_file, tls.key_file)
    try:
        await start_site(runner, host, port, ssl_context=context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(remediator.reload()))
        print(f"tradeops-remediator listening on {host}:{port}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tradeops-remediator`; returns the process exit code."""
    args = build_parser().parse_args(argv)
    config_path = Path(getattr(args, "config.file"))
    try:
        config = load_checked(config_path)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 1
    if args.check_config:
        print(f"{config_path}: configuration is valid")
        return 0
    if args.explain:
        return explain(config, Path(args.explain))
    try:
        host, port = parse_listen_address(getattr(args, "web.listen_address"))
    except ValueError as error:
        print(f"tradeops-remediator: {error}", file=sys.stderr)
        return 2
    if config.token() is None and not config.allow_unauthenticated:
        print(
            "tradeops-remediator: no webhook token: set TRADEOPS_WEBHOOK_TOKEN or webhook_token(_file), "
            "or allow_unauthenticated: true",
            file=sys.stderr,
        )
        return 1
    setup_logging(getattr(args, "log.level"))
    remediator = Remediator(build_engine(config, RemediatorMetrics()), config_path)
    try:
        asyncio.run(serve(remediator, host, port))
    except PortInUseError as error:
        print(f"tradeops-remediator: cannot start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
