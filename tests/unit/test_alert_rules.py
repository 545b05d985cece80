"""The shipped rules: conventions, runbook pages, the metrics contract, and promtool's own checks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prereqs import require_binary

ROOT = Path(__file__).parents[2]
RULE_FILES = sorted((ROOT / "alert_rules").glob("*.yml"))
RUNBOOK_PREFIX = "https://github.com/tradeops/tradeops/blob/main/"
METRIC = re.compile(r"\btradeops_[a-z0-9_]+")
WATCHDOG = "Watchdog"  # the dead man's switch: always firing, routed to `deadmansswitch` (alert_rules/tradeops.yml)


def alerts() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if "alert" in rule]
    return found


def produced_metric_names() -> set[str]:
    """Metric names the exporter and the remediator register (counters without their _total suffix)."""
    names: set[str] = set()
    for package in ("exporter", "remediator"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r'"(tradeops_[a-z0-9_]+)"', path.read_text()))
    return names


def test_there_are_rule_files_and_alerts() -> None:
    assert RULE_FILES
    assert len(alerts()) >= 20


@pytest.mark.parametrize("alert", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_follows_the_conventions_and_links_an_existing_runbook_page(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name)
    if name == WATCHDOG:  # kube-prometheus' convention: no severity, so no severity route ever pages on it
        assert alert["labels"] == {"severity": "none"}
    else:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["labels"]["priority"] in {"P0", "P1", "P2", "P3"}
    annotations = alert["annotations"]
    assert annotations["summary"]
    assert "{{" in annotations["description"]
    url = annotations["runbook_url"]
    assert url == f"{RUNBOOK_PREFIX}docs/runbooks/{name}.md"
    page = ROOT / url.removeprefix(RUNBOOK_PREFIX)
    assert page.is_file()
    text = page.read_text()
    for heading in ("## Meaning", "## Diagnosis", "## First response", "## What the remediator does on its own"):
        assert heading in text


def test_severity_follows_priority() -> None:
    expected = {"P0": "critical", "P1": "critical", "P2": "warning", "P3": "info"}
    for alert in alerts():
        if alert["alert"] != WATCHDOG:
            assert alert["labels"]["severity"] == expected[alert["labels"]["priority"]], alert["alert"]


def test_every_for_has_a_reason_comment_above_the_alert() -> None:
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.strip().startswith("- alert:"):
                assert lines[index - 1].strip().startswith("#"), f"{path.name}: {line.strip()} has no reason comment"


def test_every_tradeops_metric_a_rule_uses_is_documented_and_produced() -> None:
    documented = (ROOT / "docs/metrics.md").read_text()
    produced = produced_metric_names()
    for path in RULE_FILES:
        for metric in set(METRIC.findall(path.read_text())):
            base = re.sub(r"_(total|bucket|count|sum)$", "", metric)
            assert f"`{metric}`" in documented or f"`{base}_total`" in documented, f"{metric} not in docs/metrics.md"
            assert base in produced, f"{metric} is not produced by exporter/ or remediator/"


def test_every_alert_has_a_promtool_test() -> None:
    tested = set()
    for path in (ROOT / "alert_rules/tests").glob("*_test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {check["alertname"] for check in case.get("alert_rule_test", []) if check.get("exp_alerts")}
    assert {alert["alert"] for alert in alerts()} <= tested


def test_promtool_check_rules_is_clean() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    tests = sorted(str(p.name) for p in (ROOT / "alert_rules/tests").glob("*_test.yml"))
    result = subprocess.run(
        [promtool, "test", "rules", *tests],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT / "alert_rules/tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)
