"""mixin.libsonnet, the monitoring mixin, through Debian's jsonnet: the shipped rules and dashboards exactly, its
selectors applied, its output accepted by promtool, and a bad `_config` refused with the mixin's file and line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prereqs import require_binary
from tools import deploy

ROOT = Path(__file__).resolve().parents[2]
MIXIN = ROOT / "mixin/mixin.libsonnet"
GENERIC_DASHBOARDS = {"overview.json", "collectors.json", "backups.json", "remediation.json"}


def jsonnet(expression: str) -> subprocess.CompletedProcess[str]:
    """Evaluate a jsonnet expression in the repository root (where `import 'mixin/mixin.libsonnet'` resolves)."""
    return subprocess.run(
        [require_binary("jsonnet"), "-e", expression],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def evaluate(expression: str) -> Any:
    result = jsonnet(expression)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def shipped_rules(files: list[str]) -> list[dict[str, Any]]:
    return [
        r
        for name in files
        for g in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]
        for r in g["rules"]
    ]


def test_the_mixin_carries_the_profiles_alerts_and_recording_rules_unchanged() -> None:
    assert MIXIN.is_file(), "no mixin/mixin.libsonnet"
    mixin = evaluate("local m = import 'mixin/mixin.libsonnet'; {alerts: m.prometheusAlerts, rules: m.prometheusRules}")
    shipped = shipped_rules(deploy.profile_rule_files())
    alerts = [r for g in mixin["alerts"]["groups"] for r in g["rules"]]
    records = [r for g in mixin["rules"]["groups"] for r in g["rules"]]
    assert alerts == [r for r in shipped if "alert" in r]
    assert records == [r for r in shipped if "record" in r]


def test_every_rule_file_is_in_the_mixin() -> None:
    names = sorted(p.name for p in (ROOT / "alert_rules").glob("*.yml"))
    config = json.dumps({"ruleFiles": names})
    mixin = evaluate(f"local m = (import 'mixin/mixin.libsonnet') + {{_config+:: {config}}}; m.prometheusAlerts")
    assert {r["alert"] for g in mixin["groups"] for r in g["rules"]} == {
        r["alert"] for r in shipped_rules(names) if "alert" in r
    }


def test_the_selectors_of_the_config_replace_the_shipped_jobs_and_promtool_accepts_the_result(tmp_path: Path) -> None:
    config = json.dumps({"exporterSelector": 'job="my-exporter"', "remediatorSelector": 'job=~"remediator-.*"'})
    mixin = evaluate(
        f"local m = (import 'mixin/mixin.libsonnet') + {{_config+:: {config}}}; "
        "{alerts: m.prometheusAlerts, rules: m.prometheusRules}"
    )
    exprs = {r["alert"]: r["expr"] for g in mixin["alerts"]["groups"] for r in g["rules"]}
    assert 'up{job="my-exporter"}' in exprs["TradeopsExporterDown"]
    assert 'up{job=~"remediator-.*"}' in exprs["TradeopsRemediatorDown"]
    assert not [name for name, expr in exprs.items() if 'job="tradeops-' in expr]
    promtool = require_binary("promtool")
    for kind, document in mixin.items():
        path = tmp_path / f"{kind}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_mixin_dashboards_are_the_shipped_files() -> None:
    dashboards = evaluate("(import 'mixin/mixin.libsonnet').grafanaDashboards")
    assert set(dashboards) == GENERIC_DASHBOARDS
    names = sorted(p.name for p in (ROOT / "grafana_dashboards").glob("*.json"))
    config = json.dumps({"dashboards": names})
    every = evaluate(f"((import 'mixin/mixin.libsonnet') + {{_config+:: {config}}}).grafanaDashboards")
    assert list(every) == names
    for name, dashboard in every.items():
        assert dashboard == json.loads((ROOT / "grafana_dashboards" / name).read_text()), name


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ruleFiles": ["no_such.yml"]}, "names no_such.yml, which is not in alert_rules/"),
        ({"dashboards": ["no-such.json"]}, "names no-such.json, which is not in grafana_dashboards/"),
    ],
)
def test_a_config_naming_a_missing_file_fails_with_the_mixins_line(config: dict[str, list[str]], message: str) -> None:
    result = jsonnet(
        f"local m = (import 'mixin/mixin.libsonnet') + {{_config+:: {json.dumps(config)}}}; "
        "[m.prometheusAlerts, m.grafanaDashboards]"
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "mixin.libsonnet:" in result.stderr, result.stderr  # jsonnet's trace names the file and line
