"""Prometheus-style flags, each settable as TRADEOPS_<NAME>: the environment overrides a default, the command line
overrides both; listen addresses are HOST:PORT (IPv6 in brackets) or an error."""

from __future__ import annotations

import pytest

from common.cli import EnvDefaultParser, env_name, parse_listen_address, service_parser


@pytest.mark.parametrize(
    ("flag", "variable"),
    [
        ("--web.listen-address", "TRADEOPS_WEB_LISTEN_ADDRESS"),
        ("--config.file", "TRADEOPS_CONFIG_FILE"),
        ("--check-config", "TRADEOPS_CHECK_CONFIG"),
        ("--log.level", "TRADEOPS_LOG_LEVEL"),
    ],
)
def test_each_flag_has_its_environment_variable(flag: str, variable: str) -> None:
    assert env_name(flag) == variable


def build(environ: dict[str, str]) -> EnvDefaultParser:
    built = EnvDefaultParser(prog="t", environ=environ)
    built.add_flag("--web.listen-address", default=":1", help="where")
    built.add_flag("--config.file", required=True, help="file")
    built.add_switch("--check-config", help="check")
    return built


def test_the_default_holds_when_neither_environment_nor_command_line_sets_a_flag() -> None:
    args = build({}).parse_args(["--config.file", "c.yml"])
    assert getattr(args, "web.listen_address") == ":1"
    assert args.check_config is False


def test_the_environment_overrides_the_default_and_satisfies_a_required_flag() -> None:
    environ = {"TRADEOPS_WEB_LISTEN_ADDRESS": ":2", "TRADEOPS_CONFIG_FILE": "env.yml"}
    args = build(environ).parse_args([])
    assert (getattr(args, "web.listen_address"), getattr(args, "config.file")) == (":2", "env.yml")


def test_the_command_line_overrides_the_environment() -> None:
    args = build({"TRADEOPS_CONFIG_FILE": "env.yml"}).parse_args(["--config.file", "cli.yml"])
    assert getattr(args, "config.file") == "cli.yml"


def test_a_required_flag_set_nowhere_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build({}).parse_args([])
    assert caught.value.code == 2
    assert "--config.file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("true", True), ("YES", True), ("0", False), ("no", False), ("", False)]
)
def test_a_switch_is_turned_on_by_its_variable_only_with_a_true_word(value: str, on: bool) -> None:
    args = build({"TRADEOPS_CHECK_CONFIG": value, "TRADEOPS_CONFIG_FILE": "c"}).parse_args([])
    assert args.check_config is on


def test_the_help_names_each_flags_variable() -> None:
    assert "(env TRADEOPS_WEB_LISTEN_ADDRESS)" in build({}).format_help()


def test_version_prints_the_build_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        service_parser("tradeops-test", "test", ":1").parse_args(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("tradeops-test, version ")


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:10102", ("127.0.0.1", 10102)),
        (":10102", ("0.0.0.0", 10102)),
        ("[::1]:80", ("::1", 80)),
        ("[::]:0", ("::", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_a_listen_address_is_split_into_host_and_port(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["", "10102", "host", "host:", "host:http", "host:-1", "host:65536", "host: 80"])
def test_anything_but_host_port_is_an_error(address: str) -> None:
    with pytest.raises(ValueError, match="listen address"):
        parse_listen_address(address)
