"""`tradeops-exporter`: serve the runbook's checks as Prometheus metrics."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import EnvDefaultParser, parse_listen_address, service_parser
from common.config import ConfigError
from common.logs import check_log_flags, setup_logging
from common.service import run_service, serve_until_stopped
from common.webconfig import WebConfig, load_web_config_flag, server_ssl_context
from exporter.config import ExporterConfig, load
from exporter.probeset import build_probe_set
from exporter.web import Exporter, build_app

DEFAULT_LISTEN = "0.0.0.0:10101"


def build_parser() -> EnvDefaultParser:
    """Return the exporter's argument parser."""
    return service_parser("tradeops-exporter", "Prometheus exporter for trading operations.", DEFAULT_LISTEN)


async def serve(
    config_path: Path,
    config: ExporterConfig,
    host: str,
    port: int,
    enable_lifecycle: bool,
    web_config: WebConfig | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, over TLS and behind basic auth when the web config says so; SIGHUP reloads the
    configuration (so does POST /-/reload with the flag)."""
    exporter = Exporter(config_path, build_probe_set(config))
    app = build_app(exporter, enable_lifecycle, web_config)
    context = server_ssl_context(web_config) if web_config is not None else None
    await serve_until_stopped(app, host, port, "tradeops-exporter", exporter.reload, ssl_context=context)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `tradeops-exporter`; returns the process exit code."""
    args = build_parser().parse_args(argv)
    log_level, log_format = getattr(args, "log.level"), getattr(args, "log.format")
    try:
        check_log_flags(log_level, log_format)
    except ValueError as error:
        print(f"tradeops-exporter: {error}", file=sys.stderr)
        return 2
    config_path = Path(getattr(args, "config.file"))
    try:
        config = load(config_path)
        web_config = load_web_config_flag(getattr(args, "web.config.file"))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return 1
    if args.check_config:
        print(f"{config_path}: configuration is valid")
        if web_config is not None:
            print(f"{getattr(args, 'web.config.file')}: web configuration is valid")
        return 0
    try:
        host, port = parse_listen_address(getattr(args, "web.listen_address"))
    except ValueError as error:
        print(f"tradeops-exporter: {error}", file=sys.stderr)
        return 2
    setup_logging(log_level, log_format)
    return run_service(
        "tradeops-exporter", serve(config_path, config, host, port, getattr(args, "web.enable_lifecycle"), web_config)
    )


if __name__ == "__main__":
    sys.exit(main())
