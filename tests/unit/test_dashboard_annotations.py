"""The Remediation dashboard marks the remediator's actions and escalations as annotations from its own metrics
(queries that promtool parses, narrowed by the job and instance variables) and links to the console through a
variable holding the remediator's external URL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import dashboards

ROOT = Path(__file__).resolve().parents[2]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def remediation() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "grafana_dashboards" / "remediation.json").read_text())
    return document


def test_actions_and_escalations_are_annotations_from_the_remediators_counters() -> None:
    annotations = {a["name"]: a for a in remediation()["annotations"]["list"]}
    counters = {
        "Remediator actions": "tradeops_remediator_actions_total",
        "Remediator escalations": "tradeops_remediator_escalations_total",
    }
    assert set(annotations) == set(counters)
    for name, counter in counters.items():
        annotation = annotations[name]
        assert annotation["datasource"] == DATASOURCE
        assert annotation["enable"] is True
        expr = annotation["expr"]
        assert annotation["target"]["expr"] == expr
        assert f'increase({counter}{{job=~"$job",instance=~"$instance"}}[$__rate_interval])' in expr
        assert expr.endswith("> 0")  # a mark only where the counter moved


def test_annotation_queries_parse_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (apt-get install prometheus)")
    rules = [
        {
            "record": f"tradeops:annotation_{index}",
            "expr": a["expr"].replace("$__rate_interval", "5m").replace("$job", ".+").replace("$instance", ".+"),
        }
        for index, a in enumerate(remediation()["annotations"]["list"])
    ]
    path = tmp_path / "annotations.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "annotations", "rules": rules}]}))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_links_to_the_console_through_the_remediator_url_variable() -> None:
    document = remediation()
    variables = {v["name"]: v for v in document["templating"]["list"]}
    url = variables[dashboards.CONSOLE_VARIABLE]
    assert url["type"] == "textbox"
    assert url["query"].startswith("http")
    links = {link["title"]: link["url"] for link in document["links"] if link["type"] == "link"}
    assert links == {
        "Console: incidents": "${remediator_url}/console/incidents",
        "Console: approvals waiting": "${remediator_url}/console/approvals",
    }
