"""Every shipped alert through every shipped Alertmanager config, routed by amtool itself: tradeops' own
alerts and the remediator's escalations reach a human directly, the Watchdog reaches the dead man's switch,
and every other alert reaches the remediator (or a human)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox.stack import Stack, StackOptions, StackPorts

from tests.prereqs import require_binary

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "alert_rules").glob("*.yml"))
OWN_RULES = ROOT / "alert_rules/tradeops.yml"
KUBERNETES_CONFIG = ROOT / "deploy/kubernetes/components/alertmanager/alertmanager.yaml"
ALERTMANAGER_CONFIG = ROOT / "deploy/kubernetes/base/alertmanagerconfig.yaml"
REMEDIATOR = "tradeops-remediator"
PAGER = "pager"
DEADMANSSWITCH = "deadmansswitch"
WATCHDOG = "Watchdog"


@dataclass(frozen=True)
class Alert:
    """An alert as a rule file defines it: its name, its static labels, and whether it is tradeops' own."""

    name: str
    labels: dict[str, str]
    own: bool


def shipped_alerts() -> list[Alert]:
    """Every alert of every shipped rule file, with the labels its rule sets (templated values left out)."""
    found: list[Alert] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                labels = {k: str(v) for k, v in rule.get("labels", {}).items() if "{{" not in str(v)}
                found.append(Alert(rule["alert"], labels, own=path == OWN_RULES))
    return found


def compose_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    return config


def kubernetes_config() -> dict[str, Any]:
    """The Alertmanager config the kustomization ships: the `alertmanager.yaml` key of a Secret."""
    assert KUBERNETES_CONFIG.is_file(), "deploy/kubernetes ships no Alertmanager config"
    secrets = [d for d in yaml.safe_load_all(KUBERNETES_CONFIG.read_text()) if d and d["kind"] == "Secret"]
    assert len(secrets) == 1
    config: dict[str, Any] = yaml.safe_load(secrets[0]["stringData"]["alertmanager.yaml"])
    return config


def _route(route: dict[str, Any]) -> dict[str, Any]:
    """An AlertmanagerConfig route as Alertmanager's route, as prometheus-operator translates it."""
    keys = {"receiver": "receiver", "groupBy": "group_by", "groupWait": "group_wait", "continue": "continue"}
    keys |= {"groupInterval": "group_interval", "repeatInterval": "repeat_interval"}
    converted: dict[str, Any] = {keys[k]: v for k, v in route.items() if k in keys}
    assert set(route) <= {*keys, "matchers", "routes"}, set(route) - {*keys, "matchers", "routes"}
    if "matchers" in route:
        converted["matchers"] = [f"{m['name']}{m['matchType']}{json.dumps(m['value'])}" for m in route["matchers"]]
    if "routes" in route:
        converted["routes"] = [_route(child) for child in route["routes"]]
    return converted


def alertmanager_config_resource() -> dict[str, Any]:
    """The AlertmanagerConfig the kustomization's base ships, as the Alertmanager config the operator makes of it
    (receiver names unprefixed, the operator's namespace matcher left out: docs/deploy.md says how to drop it)."""
    (resource,) = [d for d in yaml.safe_load_all(ALERTMANAGER_CONFIG.read_text()) if d]
    assert resource["kind"] == "AlertmanagerConfig"
    spec = resource["spec"]
    receivers = []
    for receiver in spec["receivers"]:
        converted: dict[str, Any] = {"name": receiver["name"]}
        for webhook in receiver.get("webhookConfigs", []):
            secret = webhook["httpConfig"]["authorization"]["credentials"]
            authorization = {"type": webhook["httpConfig"]["authorization"]["type"]}
            authorization["credentials_file"] = f"/etc/alertmanager/secrets/{secret['name']}/{secret['key']}"
            converted.setdefault("webhook_configs", []).append(
                {
                    "url": webhook["url"],
                    "send_resolved": webhook["sendResolved"],
                    "max_alerts": webhook["maxAlerts"],
                    "http_config": {"authorization": authorization},
                }
            )
        receivers.append(converted)
    inhibit = [
        {
            "source_matchers": [f"{m['name']}{m['matchType']}{json.dumps(m['value'])}" for m in rule["sourceMatch"]],
            "target_matchers": [f"{m['name']}{m['matchType']}{json.dumps(m['value'])}" for m in rule["targetMatch"]],
            "equal": rule["equal"],
        }
        for rule in spec.get("inhibitRules", [])
    ]
    return {"route": _route(spec["route"]), "receivers": receivers, "inhibit_rules": inhibit}


def demo_config(tmp_path: Path) -> dict[str, Any]:
    """The config the demo's stack writes for its Alertmanager (deploy/sandbox/stack.py)."""
    stack = Stack(StackOptions(run_dir=tmp_path, ports=StackPorts.standard()))
    return stack.alertmanager_config()


CONFIGS = {
    "compose": lambda _: compose_config(),
    "kubernetes": lambda _: kubernetes_config(),
    "alertmanagerconfig": lambda _: alertmanager_config_resource(),
    "demo": demo_config,
}


@pytest.fixture(params=sorted(CONFIGS))
def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """One shipped Alertmanager config, written to a file that `amtool check-config` accepts."""
    amtool = require_binary("amtool")
    path = tmp_path / f"{request.param}.yml"
    path.write_text(yaml.safe_dump(CONFIGS[request.param](tmp_path), sort_keys=False))
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def receivers(amtool: str, config: Path, labels: dict[str, str]) -> set[str]:
    """The receivers Alertmanager would notify for an alert with these labels, as amtool computes them."""
    matchers = [f'{key}="{value}"' for key, value in labels.items()]
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *matchers],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {name.strip() for name in result.stdout.strip().split(",") if name.strip()}


def test_there_are_own_alerts_and_a_watchdog() -> None:
    alerts = shipped_alerts()
    assert WATCHDOG in {a.name for a in alerts if a.own}
    assert {"TradeopsRemediatorDown", "TradeopsEscalationsFailing", "TradeopsEscalationsStuck"} <= {
        a.name for a in alerts if a.own
    }


def test_the_remediator_receiver_posts_to_its_webhook_with_bearer_auth(config_file: Path) -> None:
    config = yaml.safe_load(config_file.read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == REMEDIATOR)
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith(":10102/webhook")
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert {r["name"] for r in config["receivers"]} >= {REMEDIATOR, PAGER, DEADMANSSWITCH}


def test_own_alerts_reach_the_pager_and_the_watchdog_the_dead_mans_switch(config_file: Path) -> None:
    amtool = require_binary("amtool")
    wrong = {}
    for alert in shipped_alerts():
        if not alert.own:
            continue
        got = receivers(amtool, config_file, {"alertname": alert.name, **alert.labels})
        expected_ok = got == {DEADMANSSWITCH} if alert.name == WATCHDOG else PAGER in got
        if not expected_ok:
            wrong[alert.name] = sorted(got)
    assert not wrong, f"tradeops' own alerts routed away from a human: {wrong}"


def test_remediation_escalated_reaches_the_pager_and_never_the_remediator(config_file: Path) -> None:
    amtool = require_binary("amtool")
    wrong = {}
    for alert in shipped_alerts():
        # The remediator's escalation carries the original alert's labels (remediator/escalation).
        labels = {
            **alert.labels,
            "alertname": "RemediationEscalated",
            "original_alertname": alert.name,
            "escalation_reason": "no_rule",
        }
        got = receivers(amtool, config_file, labels)
        if PAGER not in got or REMEDIATOR in got:
            wrong[alert.name] = sorted(got)
    assert not wrong, f"RemediationEscalated of these alerts does not reach only a human: {wrong}"


def test_every_other_alert_reaches_the_remediator_or_a_human(config_file: Path) -> None:
    amtool = require_binary("amtool")
    wrong = {}
    for alert in shipped_alerts():
        if alert.own:
            continue
        got = receivers(amtool, config_file, {"alertname": alert.name, **alert.labels})
        if not got & {REMEDIATOR, PAGER}:
            wrong[alert.name] = sorted(got)
    assert not wrong, f"alerts that reach neither the remediator nor the pager: {wrong}"
