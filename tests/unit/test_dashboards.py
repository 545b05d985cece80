"""The dashboards follow grafana/dashboard-linter's rules, match their generator and use documented metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import dashboards

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((ROOT / "grafana_dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
NOT_METRICS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "inf", "nan",
}  # fmt: skip
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
SELECTOR = re.compile(r"(?<![\w:$])([a-zA-Z_:][\w:]*)(?![\w:])\s*(\{[^}]*\})?(?!\s*\()")


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def targets(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in document["panels"] for target in panel["targets"]]


def selectors(expr: str) -> list[tuple[str, str]]:
    """Return (metric, matchers) for every series selector in a PromQL expression."""
    stripped = GROUPING.sub(" ", re.sub(r'"[^"]*"', '""', expr))
    # Matchers were blanked above to find names; read the real matchers back from the original expression.
    found = []
    for match in SELECTOR.finditer(stripped):
        name = match.group(1)
        if name in NOT_METRICS or re.fullmatch(r"[\d.e+-]+", name):
            continue
        real = re.search(re.escape(name) + r"\s*(\{[^}]*\})", expr[match.start() :])
        found.append((name, real.group(1) if real and match.group(2) else ""))
    return found


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(tradeops_\w+)`", (ROOT / "docs/metrics.md").read_text(), re.MULTILINE))


def recorded_series() -> set[str]:
    names = set()
    for path in (ROOT / "alert_rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def test_there_are_the_four_dashboards_the_mastertrade_runbook_needs() -> None:
    titles = {load(path)["title"] for path in DASHBOARD_FILES if "mastertrade" in load(path)["tags"]}
    assert titles == {
        "Trading Ops Overview",
        "Trading Ops Data Collectors",
        "Trading Ops Backups",
        "Trading Ops Remediation",
    }


def test_every_profile_has_an_overview_a_trading_and_a_remediation_dashboard_of_its_own() -> None:
    profiles = {p.parent.name for p in (ROOT / "deploy/profiles").glob("*/profile.yml")}
    by_system: dict[str, set[str]] = {}
    for path in DASHBOARD_FILES:
        document = load(path)
        (system,) = set(document["tags"]) - {"tradeops"}
        by_system.setdefault(system, set()).add(document["uid"])
        link = document["links"][0]
        assert link["type"] == "dashboards"
        assert link["tags"] == [system], f"{path.name} links another set"
    assert set(by_system) == profiles
    for system in profiles - {"mastertrade"}:
        key = system.replace(".", "")
        assert by_system[system] == {f"tradeops-{key}-{kind}" for kind in ("overview", "trading", "remediation")}


def test_committed_json_is_what_the_generator_writes() -> None:
    for dashboard in dashboards.DASHBOARDS:
        path = ROOT / "grafana_dashboards" / dashboards.file_name(dashboard)
        assert path.read_text() == dashboards.serialise(dashboard), f"run python -m tools.dashboards ({path.name})"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_has_a_stable_uid_and_the_datasource_job_and_instance_variables(path: Path) -> None:
    document = load(path)
    assert re.fullmatch(r"[a-z0-9-]{1,40}", document["uid"])
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
    assert "${DS_" not in path.read_text(), "file provisioning does not resolve ${DS_...} placeholders"


def test_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_panel_has_title_description_unit_and_uses_the_datasource_variable(path: Path) -> None:
    for panel in load(path)["panels"]:
        assert panel["title"].strip()
        assert panel["description"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_range_selectors_use_rate_interval_and_counters_appear_only_inside_rate_or_increase(path: Path) -> None:
    for title, target in targets(load(path)):
        expr = target["expr"]
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{title}: range [{window}]"
        for name, _ in selectors(expr):
            if name.endswith(COUNTER_SUFFIXES):
                inside_rate = re.search(rf"\b(?:rate|increase)\(\s*{name}\{{[^}}]*\}}\[", expr)
                assert inside_rate, f"{title}: bare counter {name}"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_raw_series_is_narrowed_by_job_and_instance(path: Path) -> None:
    for title, target in targets(load(path)):
        for name, matchers in selectors(target["expr"]):
            if ":" in name or name == "ALERTS":
                continue  # recorded aggregates and Prometheus' own ALERTS carry no scrape job
            assert 'job=~"$job"' in matchers, f"{title}: {name} without the job variable"
            assert 'instance=~"$instance"' in matchers, f"{title}: {name} without the instance variable"


def test_every_tradeops_metric_used_is_documented_and_every_recorded_series_exists() -> None:
    documented = documented_metrics()
    recorded = recorded_series()
    for path in DASHBOARD_FILES:
        document = load(path)
        exprs = [target["expr"] for _, target in targets(document)]
        exprs += [v["definition"] for v in document["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for name, _ in selectors(expr):
                if ":" in name:
                    assert name in recorded, f"{path.name}: {name} is not a recording rule"
                elif name.startswith("tradeops_"):
                    base = re.sub(r"_(bucket|count|sum)$", "", name)
                    assert name in documented or base in documented, f"{path.name}: {name} not in docs/metrics.md"


def test_selector_finder_sees_names_and_matchers_and_skips_functions_and_groupings() -> None:
    found = selectors('sum by (job, le) (rate(a_total{job=~"$job"}[$__rate_interval])) / on (x) b or vector(0)')
    assert found == [("a_total", '{job=~"$job"}'), ("b", "")]


def test_provisioning_points_grafana_at_the_dashboard_directory() -> None:
    provider = yaml.safe_load((ROOT / "grafana_dashboards/provisioning/dashboards.yml").read_text())
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]
