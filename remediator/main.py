"""`tradeops-remediator`: the Alertmanager webhook that performs the runbook's first responses."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from common.cli import EnvDefaultParser, parse_listen_address, service_parser
from common.config import ConfigError, validation_details
from common.logs import check_log_flags, setup_logging
from common.service import run_service, serve_until_stopped
from common.webconfig import WebConfig, load_web_config_flag, server_ssl_context
from remediator.api.web import Remediator, build_app
from remediator.app import build_engine, load_checked
from remediator.config import RemediatorConfig
from remediator.intake.payload import WebhookAlert, parse_payload
from remediator.metrics import RemediatorMetrics

DEFAULT_LISTEN = "0.0.0.0:10102"


def build_parser() -> EnvDefaultParser:
    """Return the remediator's argument parser."""
    parser = service_parser("tradeops-remediator", "Alertmanager webhook remediator.", DEFAULT_LISTEN)
    parser.add_flag("--explain", help="print the decision for each alert of this payload file; run nothing")
    return parser


def explain(config: RemediatorConfig, payload_path: Path) -> int:
    """Print one JSON line per alert and rule: the matched rule, the decision and the reason."""
    try:
        payload = parse_payload(payload_path.read_bytes())
    except OSError as error:
        print(f"tradeops-remediator: cannot read {payload_path}: {error}", file=sys.stderr)
        return 1
    except ValidationError as error:
        for detail in validation_details(error):
            print(f"{payload_path}: {detail}", file=sys.stderr)
        return 1
    # Decided as for a fresh incident on a fresh, private state: nothing shared is read or written.
    private = config.model_copy(
        update={"audit_path": Path(":memory:"), "state_path": Path(":memory:"), "state": "memory", "audit": "sqlite"}
    )
    engine = build_engine(private, RemediatorMetrics())

    async def _explain() -> None:
        for document in payload["alerts"]:
            alert = WebhookAlert.from_document(document)
            for plan in await engine.explain(alert):
                print(json.dumps(plan.describe(alert)))
        await engine.store.close()

    asyncio.run(_explain())
    return 0


async def serve(
    remediator: Remediator,
    host: str,
    port: int,
    enable_lifecycle: bool = False,
    web_config: WebConfig | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, over TLS and with basic auth when the web config says so; SIGHUP reloads the
    configuration, keeping all state (so does POST /-/reload, with --web.enable-lifecycle and the token)."""
    context = server_ssl_context(web_config) if web_config is not None else None
    app = build_app(remediator, enable_lifecycle, web_config)
    await serve_until_stopped(app, host, port, "tradeops-remediator", remediator.reload, ssl_context=context)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tradeops-remediator`; returns the process exit code."""
    args = build_parser().parse_args(argv)
    log_level, log_format = getattr(args, "log.level"), getattr(args, "log.format")
    try:
        check_log_flags(log_level, log_format)
    except ValueError as error:
        print(f"tradeops-remediator: {error}", file=sys.stderr)
        return 2
    config_path = Path(getattr(args, "config.file"))
    try:
        config = load_checked(config_path)
        web_config = load_web_config_flag(getattr(args, "web.config.file"))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 1
    if args.check_config:
        print(f"{config_path}: configuration is valid")
        if web_config is not None:
            print(f"{getattr(args, 'web.config.file')}: web configuration is valid")
        return 0
    if args.explain:
        return explain(config, Path(args.explain))
    try:
        host, port = parse_listen_address(getattr(args, "web.listen_address"))
    except ValueError as error:
        print(f"tradeops-remediator: {error}", file=sys.stderr)
        return 2
    basic_auth = web_config is not None and bool(web_config.basic_auth_users)
    if config.token() is None and not config.allow_unauthenticated and not basic_auth:
        print(
            "tradeops-remediator: no webhook token: set TRADEOPS_WEBHOOK_TOKEN or webhook_token(_file), "
            "basic_auth_users in --web.config.file, or allow_unauthenticated: true",
            file=sys.stderr,
        )
        return 1
    setup_logging(log_level, log_format)
    remediator = Remediator(build_engine(config, RemediatorMetrics()), config_path)
    return run_service(
        "tradeops-remediator", serve(remediator, host, port, getattr(args, "web.enable_lifecycle"), web_config)
    )


if __name__ == "__main__":
    sys.exit(main())
