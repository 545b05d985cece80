"""The demo and e2e stacks point the ai-trading containers probe (memory on) and restart-leaking-service's
allowlist at the stack's own containers, so that a leak the sandbox injects is seen and restarted there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.profiles import AI_TRADING
from sandbox.stack import Stack, StackOptions, StackPorts


def stack(tmp_path: Path, docker_host: str | None) -> Stack:
    ports = StackPorts.free(AI_TRADING)
    options = StackOptions(tmp_path, ports, profile="ai-trading", docker_host=docker_host, container_prefix="e2e-1_")
    return Stack(options)


def leak_allowlist(config: dict[str, Any]) -> list[str]:
    (rule,) = (rule for rule in config["rules"] if rule["name"] == "restart-leaking-service")
    allowed: list[str] = rule["label_params"]["container"]["allowed"]
    return allowed


def test_with_an_engine_the_memory_probe_reads_the_stacks_containers_and_the_leak_rule_restarts_them(
    tmp_path: Path,
) -> None:
    running = stack(tmp_path, "unix:///run/engine.sock")
    (probe,) = running.exporter_config()["probes"]["containers"]
    assert probe["docker_host"] == "unix:///run/engine.sock"
    assert probe["include"] == ["e2e\\-1_.*"]
    allowed = leak_allowlist(running.remediator_config())
    assert "e2e-1_trade_executor" in allowed
    assert "e2e-1_data_collector" in allowed
    assert not any(name.startswith("ai-trading-") for name in allowed)


def test_without_an_engine_the_shipped_names_stay(tmp_path: Path) -> None:
    running = stack(tmp_path, None)
    (probe,) = running.exporter_config()["probes"]["containers"]
    assert probe["include"] == ["ai-trading-.*"]
    allowed = leak_allowlist(running.remediator_config())
    assert "ai-trading-trade-executor" in allowed
