"""Three runbook checks served end to end (issue 23): seed 000's Grafana and Monitoring UI, seed 003's backup
completion and seed 002's market-data freshness, each from the shipped exporter target through its alert and
its remediator rule to the sandbox stand-in that answers it."""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path
from typing import Any

import yaml
from sandbox import backups
from sandbox.profiles import PROFILES
from sandbox.stack import Stack, StackOptions, StackPorts

from remediator.config import ActStep, DiagnoseStep, RuleConfig
from remediator.policy.decide import matching_rules
from tests.unit.test_shipped_profiles import manifest, remediator

ROOT = Path(__file__).parents[2]


def exporter_profile(profile: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy/profiles" / profile / "exporter.yml").read_text())
    return data


def rule_for(profile: str, **labels: str) -> RuleConfig:
    matched = matching_rules(remediator(profile), labels)
    assert matched, f"{profile}: no rule matches {labels}"
    return matched[0]


def alerts_of(profile: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in manifest(profile)["rule_files"]:
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            found |= {rule["alert"]: rule for rule in group["rules"] if "alert" in rule}
    return found


def target(profile: str, kind: str, name: str) -> dict[str, Any]:
    (found,) = [t for t in exporter_profile(profile)["probes"].get(kind, []) if t["name"] == name]
    return dict(found)


def acts(rule: RuleConfig) -> list[ActStep]:
    return [step for step in rule.playbook if isinstance(step, ActStep)]


def probes(rule: RuleConfig) -> dict[str, str]:
    return {p.name: p.kind for s in rule.playbook if isinstance(s, DiagnoseStep) for p in s.probes}


def stack(profile: str, tmp_path: Path) -> Stack:
    return Stack(StackOptions(run_dir=tmp_path, ports=StackPorts.free(PROFILES[profile]), profile=profile))


# -- seed 000, Service Inventory: Grafana /api/health and the Monitoring UI :3000, both medium ----------------


def test_mastertrade_probes_grafanas_api_health_and_the_monitoring_ui_as_medium_services() -> None:
    grafana = target("mastertrade", "service_health", "grafana")
    assert grafana["url"] == "http://127.0.0.1:3000/api/health"
    assert grafana["criticality"] == "medium"
    assert grafana["status_path"] == "database"  # Grafana's /api/health: {"database": "ok", "version": ...}
    assert grafana["healthy_values"] == ["ok"]
    ui = target("mastertrade", "service_health", "monitoring_ui")
    assert ui["url"].startswith("http://127.0.0.1:3000/")
    assert ui["criticality"] == "medium"
    assert ui["status_path"] is None  # the UI's page answers HTML: a 2xx is healthy


def test_a_medium_service_down_fires_service_down_and_pages_with_evidence_without_a_restart() -> None:
    assert 'criticality!="critical"' in alerts_of("mastertrade")["ServiceDown"]["expr"]
    for service in ("grafana", "monitoring_ui"):
        rule = rule_for("mastertrade", alertname="ServiceDown", service=service, criticality="medium")
        assert [step.action for step in acts(rule)] == ["escalate"], rule.name
        assert isinstance(rule.playbook[0], DiagnoseStep)
        assert rule.label_params["service"].resolve(service) == service


def test_the_mastertrade_sandbox_serves_grafana_on_the_runbooks_port() -> None:
    (spec,) = [s for s in PROFILES["mastertrade"].services if s.name == "grafana"]
    assert spec.port == 3000
    assert not spec.critical


# -- seed 003, Morning Checklist: "Verify backup completion: ls -lh /var/backups/postgresql/full/" -------------


def test_trademaster_probes_the_runbooks_full_backup_directory() -> None:
    (backup,) = exporter_profile("trademaster")["probes"]["backups"]
    assert backup["path_glob"].startswith("/var/backups/postgresql/full/")
    assert backup["integrity"] == "gzip"


def test_trademaster_alerts_on_a_missing_stale_or_broken_backup_and_pages_with_the_sets_figures() -> None:
    alert = alerts_of("trademaster")["TradeMasterBackupMissing"]
    for metric in (
        "tradeops_backup_files",
        "tradeops_backup_newest_timestamp_seconds",
        "tradeops_backup_newest_intact",
    ):
        assert metric in alert["expr"]
    rule = rule_for("trademaster", alertname="TradeMasterBackupMissing", set="postgres_full")
    assert [step.action for step in acts(rule)] == ["escalate"]  # seed 003 names no fix: a human re-runs it
    assert set(probes(rule).values()) == {"promql"}


def test_the_trademaster_sandbox_writes_the_set_its_exporter_target_reads(tmp_path: Path) -> None:
    assert "postgres_full" in PROFILES["trademaster"].backup_sets
    config = stack("trademaster", tmp_path).exporter_config()
    (backup,) = config["probes"]["backups"]
    written = backups.write_backup(tmp_path / "backups", "postgres_full", dt.datetime.now(dt.UTC))
    assert glob.glob(backup["path_glob"]) == [str(written)]


# -- seed 002: market-data freshness (curl :8001/data/status; RPO "Market Data: < 1 minute") -----------------


def test_ai_trading_reads_the_collectors_last_update_from_data_status() -> None:
    status = target("ai-trading", "service_health", "data_collector_status")
    assert status["url"] == "http://127.0.0.1:8001/data/status"
    assert status["value_paths"] == {"last_update_timestamp": "last_update"}


def test_ai_trading_market_data_stale_fires_past_the_one_minute_rpo() -> None:
    alert = alerts_of("ai-trading")["AiTradingMarketDataStale"]
    assert 'field="last_update_timestamp"' in alert["expr"]
    assert "tradeops:ai_trading_market_data_max_age_seconds:threshold" in alert["expr"]


def test_stale_market_data_diagnoses_restarts_the_collector_and_verifies_freshness() -> None:
    rule = rule_for("ai-trading", alertname="AiTradingMarketDataStale", service="data_collector_status")
    assert isinstance(rule.playbook[0], DiagnoseStep)
    assert {"collector-logs": "container_logs", "collector-health": "http_get"}.items() <= probes(rule).items()
    (restart,) = acts(rule)
    assert restart.action == "docker_restart"
    assert rule.label_params["container"].resolve("data_collector_status") == "ai-trading-data-collector"
    assert restart.verify is not None
    assert "last_update_timestamp" in restart.verify.query


def test_the_stacks_restart_the_data_collectors_own_container_for_its_status_target(tmp_path: Path) -> None:
    built = stack("ai-trading", tmp_path)
    rules = {rule["name"]: rule for rule in built.remediator_config()["rules"]}
    for name in ("restart-stale-data-collector", "restart-service"):
        mapped = rules[name]["label_params"]["container"]["map"]["data_collector_status"]
        assert mapped == built.container("data_collector"), name
