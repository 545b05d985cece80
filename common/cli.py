"""Command-line flags in Prometheus style, each also settable as TRADEOPS_<NAME> in the environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from common.version import version_text


def env_name(flag: str) -> str:
    """Return the environment variable that sets a flag: --web.listen-address -> TRADEOPS_WEB_LISTEN_ADDRESS."""
    return "TRADEOPS_" + flag.lstrip("-").replace(".", "_").replace("-", "_").upper()


class EnvDefaultParser(argparse.ArgumentParser):
    """An ArgumentParser whose options take their default from TRADEOPS_<NAME> when set."""

    def __init__(self, *args: object, environ: Mapping[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._environ = os.environ if environ is None else environ

    def add_flag(self, flag: str, *, help: str, default: str | None = None, required: bool = False) -> None:
        """Add a string flag; the environment variable overrides the default, the command line both."""
        variable = env_name(flag)
        value = self._environ.get(variable, default)
        self.add_argument(
            flag,
            default=value,
            required=required and value is None,
            help=f"{help} (env {variable})",
        )

    def add_switch(self, flag: str, *, help: str) -> None:
        """Add a boolean switch; TRADEOPS_<NAME>=1/true/yes turns it on too."""
        variable = env_name(flag)
        default = self._environ.get(variable, "").lower() in {"1", "true", "yes"}
        self.add_argument(flag, action="store_true", default=default, help=f"{help} (env {variable})")


class _VersionAction(argparse.Action):
    """`--version`: print the build's identity and exit 0 (computed only when asked for)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(version_text(parser.prog))
        parser.exit()


def add_log_and_version_flags(parser: EnvDefaultParser) -> None:
    """Add --log.level, --log.format and --version, the flags every tradeops binary shares."""
    parser.add_flag("--log.level", default="info", help="debug, info, warning or error")
    parser.add_flag("--log.format", default="logfmt", help="logfmt or json (one object per line)")
    parser.add_argument("--version", action=_VersionAction, help="print name, version, revision and exit")


def service_parser(prog: str, description: str, default_listen: str) -> EnvDefaultParser:
    """Return a parser with the flags every tradeops service takes (Prometheus style)."""
    parser = EnvDefaultParser(prog=prog, description=description)
    parser.add_flag("--config.file", required=True, help="path of the YAML configuration")
    parser.add_flag("--web.listen-address", default=default_listen, help="HOST:PORT to serve on")
    parser.add_flag(
        "--web.config.file",
        help="exporter-toolkit web configuration (TLS, basic auth); see docs/configuration.md",
    )
    add_log_and_version_flags(parser)
    parser.add_switch(
        "--web.enable-lifecycle",
        help="enable POST /-/reload (without it: 403); SIGHUP reloads either way",
    )
    parser.add_switch("--check-config", help="validate the configuration, print located errors, and exit")
    return parser


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 in brackets) into its parts, raising ValueError on anything else."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"listen address {address!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"listen address {address!r} has a port outside 0-65535")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - an empty host means all interfaces, as Prometheus does
    return host, port
