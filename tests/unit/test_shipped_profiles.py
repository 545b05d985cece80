"""The shipped profiles (deploy/profiles/<system>/): valid, loading their own rule set, and in step with the
runbook pages that describe what the remediator does."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load as load_exporter_config
from remediator.app import load_checked
from remediator.config import ActStep, DiagnoseStep, RemediatorConfig, RuleConfig
from remediator.policy.decide import matching_rules
from remediator.policy.windows import in_window
from tests.prereqs import require_binary

ROOT = Path(__file__).parents[2]
PROFILES = sorted(p.parent.name for p in (ROOT / "deploy/profiles").glob("*/profile.yml"))
PAGES = sorted((ROOT / "docs/runbooks").glob("*.md"))
COMMON_RULE_FILES = {"tradeops.yml", "thresholds.yml"}


def manifest(profile: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy/profiles" / profile / "profile.yml").read_text())
    return data


@cache
def remediator(profile: str) -> RemediatorConfig:
    return load_checked(ROOT / "deploy/profiles" / profile / "remediator.yml")


def alert_names(rule_files: list[str]) -> set[str]:
    names = set()
    for name in rule_files:
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def profile_of(alert: str) -> list[str]:
    """The profiles whose own rule file defines the alert; every profile for the common files' alerts."""
    owners = [p for p in PROFILES if alert in alert_names(sorted(set(manifest(p)["rule_files"]) - COMMON_RULE_FILES))]
    return owners or PROFILES


def test_there_is_a_profile_for_every_seed_system() -> None:
    assert {manifest(p)["seed"] for p in PROFILES} == {"000", "002", "003", "004"}


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_passes_check_config_for_both_services(profile: str) -> None:
    load_exporter_config(ROOT / "deploy/profiles" / profile / "exporter.yml")
    remediator(profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_loads_its_own_rule_set_and_promtool_accepts_it(profile: str) -> None:
    files = manifest(profile)["rule_files"]
    assert set(files) >= COMMON_RULE_FILES
    own = set(files) - COMMON_RULE_FILES
    assert len(own) == 1, "one rule file of the system's own"
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", *(str(ROOT / "alert_rules" / f) for f in files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_every_alert_a_remediator_rule_names_exists_in_the_profiles_rule_set(profile: str) -> None:
    known = alert_names(manifest(profile)["rule_files"]) | set(manifest(profile).get("external_alerts", []))
    for rule in remediator(profile).rules:
        for matcher in rule.matchers:
            found = re.fullmatch(r'alertname(=~?)"(.*)"', matcher)
            if found is None:
                continue
            names = found.group(2).split("|") if found.group(1) == "=~" else [found.group(2)]
            for name in names:
                assert name in known, f"{profile}: rule {rule.name} matches {name}, which no loaded rule raises"


def test_the_mastertrade_remediator_keeps_the_runbooks_maintenance_window_and_escalation_matrix() -> None:
    config = remediator("mastertrade")
    (window,) = config.maintenance_windows
    first_sunday = (dt.datetime(2024, 9, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 6, 2, 5, 59, tzinfo=dt.UTC))
    outside = (dt.datetime(2024, 9, 8, 3, tzinfo=dt.UTC), dt.datetime(2024, 6, 2, 6, tzinfo=dt.UTC))
    assert all(in_window(window, at) for at in first_sunday)
    assert not any(in_window(window, at) for at in outside)
    assert config.escalation.after_minutes == {"P0": 15, "P1": 120, "P2": 480, "P3": 4320}


def test_the_ai_trading_remediator_keeps_the_runbooks_sunday_2am_new_york_window() -> None:
    (window,) = remediator("ai-trading").maintenance_windows
    utc = dt.UTC
    assert in_window(window, dt.datetime(2024, 1, 7, 7, 0, tzinfo=utc))  # EST
    assert not in_window(window, dt.datetime(2024, 1, 7, 8, 0, tzinfo=utc))
    assert in_window(window, dt.datetime(2024, 7, 7, 6, 0, tzinfo=utc))  # EDT
    assert not in_window(window, dt.datetime(2024, 7, 7, 7, 0, tzinfo=utc))


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "README"], ids=lambda p: p.stem)
def test_the_rule_a_runbook_page_names_exists_and_matches_its_alert(page: Path) -> None:
    section = page.read_text().split("## What the remediator does on its own", 1)[1]
    named = re.findall(r"Rule `([a-z0-9-]+)`", section)
    for profile in profile_of(page.stem):
        config = remediator(profile)
        labels = {"alertname": page.stem}
        if named:
            # A rule that also matches on another label (the queue a playbook may touch) is matched with it.
            first = next((rule for rule in config.rules if rule.name == named[0]), None)
            assert first is not None, f"{page.name} names {named[0]}, which {profile} does not have"
            labels |= {m.name: m.value for m in first.parsed_matchers if m.operator == "=" and m.name != "alertname"}
        matched = [rule.name for rule in matching_rules(config, labels)]
        if named:
            assert matched[:1] == named[:1], f"{page.name} names {named[0]}, {profile} matches {matched}"
        else:
            assert matched == [], f"{page.name} says nothing acts, but {profile} matches {matched}"


# The playbooks follow their runbooks' order and cautions (issue 20): one test per runbook procedure.


def rule_for(profile: str, **labels: str) -> RuleConfig:
    """The first rule of the profile that an alert with these labels matches."""
    matched = matching_rules(remediator(profile), labels)
    assert matched, f"{profile}: no rule matches {labels}"
    return matched[0]


def acts(rule: RuleConfig) -> list[ActStep]:
    """The rule's act steps, in order (its diagnose steps left out)."""
    return [step for step in rule.playbook if isinstance(step, ActStep)]


def probes(rule: RuleConfig) -> dict[str, str]:
    """The rule's diagnose probes: name -> kind."""
    return {p.name: p.kind for s in rule.playbook if isinstance(s, DiagnoseStep) for p in s.probes}


def diagnoses_first(rule: RuleConfig) -> bool:
    """Whether the rule gathers its evidence before any act step runs (the runbooks' Diagnosis, then Solutions)."""
    return isinstance(rule.playbook[0], DiagnoseStep)


def actions(rule: RuleConfig) -> list[str]:
    return [step.action for step in acts(rule)]


def test_every_playbook_step_cites_its_runbook_section_and_every_condition_has_a_prometheus() -> None:
    for profile in PROFILES:
        config = remediator(profile)
        for rule in config.rules:
            for step in rule.steps:  # a one-action rule cites its section on the rule
                assert re.match(r"seed 00[0-4], ", step.source), f"{profile}: {rule.name}/{step.name} cites no seed"
            for step in acts(rule) if rule.steps else []:
                if step.when is not None or step.verify is not None:
                    assert config.prometheus is not None, f"{profile}: {rule.name} has conditions, no prometheus"


def test_an_escalate_step_is_the_last_step_and_no_page_waits_on_a_log_step() -> None:
    # An `escalate` step hands the incident over at once, with the evidence gathered before it: a step after it
    # never runs. A last `log` step with a `verify` would only delay the page (and spend action budget).
    for profile in PROFILES:
        for rule in remediator(profile).rules:
            assert "escalate" not in actions(rule)[:-1], f"{profile}: {rule.name} has steps after its page"
            last = acts(rule)[-1]
            assert last.action != "log" or last.verify is None, f"{profile}: {rule.name} delays its page"


def test_mastertrade_queue_buildup_restarts_the_consumer_first_verifies_draining_and_purges_only_signals() -> None:
    signals = rule_for("mastertrade", alertname="QueueDepthCritical", queue="strategy_service.signals")
    restart, purge = acts(signals)
    assert (restart.action, purge.action) == ("docker_restart", "rabbitmq_purge")
    assert restart.when is None
    assert restart.verify is not None
    assert "deriv(" in restart.verify.query
    assert purge.when is not None
    assert "min_over_time(" in purge.when
    assert purge.verify is not None
    assert signals.label_params["queue"].allowed == ("strategy_service.signals",)
    assert purge.approval is None  # signals are regenerated: no trade is lost
    # Issue 3 asks for the queue's depth and consumers (/api/queues): gathered before the restart, on every page
    assert diagnoses_first(signals)
    assert probes(signals) == {"queue-state": "rabbitmq_queue"}
    assert remediator("mastertrade").backends.rabbitmq_api() is not None


@pytest.mark.parametrize("queue", ["risk_manager.orders", "order_executor.executions"])
def test_mastertrade_purges_an_order_or_execution_queue_only_with_a_humans_approval(queue: str) -> None:
    rule = rule_for("mastertrade", alertname="QueueDepthCritical", queue=queue)
    restart, purge = acts(rule)
    assert (restart.action, purge.action) == ("docker_restart", "rabbitmq_purge")
    assert restart.approval is None
    assert restart.verify is not None
    assert purge.approval is not None  # Playbook 2 step 3 on a trading path: orders a purge drops are trades
    assert purge.when is not None  # re-checked after the approval: the queue is still over and not draining
    assert "deriv(" in purge.when
    assert purge.verify is not None
    assert diagnoses_first(rule)
    assert probes(rule) == {"queue-state": "rabbitmq_queue"}  # the approver sees depth, consumers, oldest age
    # and no rule anywhere purges these queues without an approval
    for other in matching_rules(remediator("mastertrade"), {"alertname": "QueueDepthCritical", "queue": queue}):
        for step in acts(other):
            if step.action == "rabbitmq_purge":
                assert step.approval is not None, f"{other.name}/{step.name} would purge {queue} unasked"


def test_mastertrade_pool_exhausted_terminates_only_sessions_idle_over_10_minutes_then_verifies() -> None:
    rule = rule_for("mastertrade", alertname="PostgresConnectionPoolExhausted")
    (step,) = acts(rule)
    assert step.action == "postgres_terminate"
    assert step.params["idle_minutes"] == 10
    assert step.params["states"] == ["idle", "idle in transaction"]
    assert step.verify is not None
    assert "server:tradeops_postgres_connections:ratio" in step.verify.query
    # step 1, "check connections": which application holds them, for step 3 (restart that service) by a human
    assert diagnoses_first(rule)
    assert set(probes(rule).values()) == {"postgres_sessions"}


@pytest.mark.parametrize(("alert", "service"), [("CriticalServiceDown", "strategy"), ("ServiceDown", "data_access")])
def test_mastertrade_service_down_restarts_then_verifies_the_services_health(alert: str, service: str) -> None:
    rule = rule_for("mastertrade", alertname=alert, service=service)
    (step,) = acts(rule)
    assert step.action == "docker_restart"
    assert step.verify is not None
    assert step.verify.query.startswith('tradeops_service_up{service="{service}"}')
    assert rule.label_params["service"].resolve(service) == service
    assert diagnoses_first(rule)  # Issue 1: docker logs mastertrade_<service>
    assert set(probes(rule).values()) == {"container_logs"}


def test_trademaster_circuit_breaker_waits_for_half_open_and_forces_it_only_with_approval() -> None:
    rule = rule_for("trademaster", alertname="CircuitBreakerOpen", name="brokerService")
    assert actions(rule) == ["log", "http_request"]
    wait, force = acts(rule)
    assert wait.verify is not None
    assert "half_open" in wait.verify.query
    assert wait.approval is None
    assert force.params["url"].endswith("/transition/forceClosed")
    assert force.approval is not None  # Incident 3 step 5, "if needed": after the wait, and only if a human says so
    assert force.when is not None
    assert 'state="open"' in force.when  # re-checked after the approval: still open
    assert force.verify is not None
    # Incident 3 Diagnosis: the breaker states, failure rate and buffered calls
    assert diagnoses_first(rule)
    assert probes(rule) == {"breaker-states": "http_get", "failure-rate": "promql", "buffered-calls": "promql"}
    for profile in PROFILES:
        for other in remediator(profile).rules:
            for step in acts(other):
                if "forceClosed" in str(step.params) or "forceOpen" in str(step.params):
                    assert step.approval is not None, f"{profile}: {other.name}/{step.name} forces a breaker unasked"


def test_trademaster_slow_queries_gather_the_sessions_then_page_and_never_cancel() -> None:
    rules = matching_rules(remediator("trademaster"), {"alertname": "SlowDatabaseQueries"})
    assert [actions(rule) for rule in rules] == [["escalate"]]  # touches nothing; the page carries the sessions
    (rule,) = rules
    (page,) = acts(rule)
    assert page.verify is None  # paged as soon as the evidence is read
    # "Identify slow queries": the longest-running sessions by application, on the page
    assert diagnoses_first(rule)
    assert probes(rule) == {"longest-query": "promql", "sessions": "postgres_sessions"}


def test_trademaster_pool_exhaustion_cancels_queries_over_30_seconds_then_verifies_the_pool() -> None:
    rule = rule_for("trademaster", alertname="DatabaseConnectionPoolExhaustion")
    (step,) = acts(rule)
    assert step.action == "postgres_cancel_queries"
    assert step.params["older_than_seconds"] == 30
    assert step.params["application_names"] == ["trademaster-trading-service"]
    assert step.verify is not None
    assert "hikaricp_connections_pending" in step.verify.query
    assert diagnoses_first(rule)  # Incident 4 Diagnosis: the pool and the long-running queries
    assert probes(rule) == {"hikari-pool": "promql", "sessions": "postgres_sessions"}


def test_v11_rate_gate_is_reset_only_when_that_gate_is_already_blocking_and_then_verified() -> None:
    rule = rule_for("ai-trading-v1.1", alertname="RateGateBackoffHigh", instance="127.0.0.1:3001")
    (step,) = acts(rule)
    assert step.action == "http_request"
    assert step.params["url"].endswith("/reset")
    assert step.when is not None
    assert 'rate_gate_backoff_count{instance="{instance}"}' in step.when
    assert step.verify is not None
    assert rule.target == "rate-gate:{instance}"  # one cooldown per gate
    assert diagnoses_first(rule)  # "Check rate gate status" first
    assert probes(rule) == {"gate-status": "http_get"}


def test_v11_pm2_restart_rate_restarts_only_the_one_process_then_verifies() -> None:
    rule = rule_for("ai-trading-v1.1", alertname="Pm2HighRestartRate", item="trading-engine")
    (step,) = acts(rule)
    argv = step.params["argv"]
    assert argv[:2] == ["pm2", "restart"]
    assert "all" not in argv
    assert argv[argv.index("--only") + 1] == "{process}"
    assert step.verify is not None
    assert 'item="{process}"' in step.verify.query
    assert rule.label_params["process"].resolve("all") is None
    assert diagnoses_first(rule)  # "Check PM2 status", "Identify failing process": every process's restarts
    assert probes(rule) == {"pm2-restarts": "promql"}


def test_v11_pm2_memory_high_restarts_only_that_allowlisted_process_while_high_then_verifies_it_fell() -> None:
    rule = rule_for("ai-trading-v1.1", alertname="Pm2ProcessMemoryHigh", item="market-data-worker")
    (step,) = acts(rule)
    assert step.action == "command"
    argv = step.params["argv"]
    assert argv[:2] == ["pm2", "restart"]
    assert "all" not in argv  # seed 004: "Don't run pm2 restart all"
    assert argv[argv.index("--only") + 1] == "{process}"
    assert rule.label_params["process"].resolve("all") is None
    assert rule.label_params["process"].resolve("market-data-worker") == "market-data-worker"
    assert step.when is not None  # a process whose memory already fell is not restarted
    assert 'field="memory"' in step.when
    assert 'item="{process}"' in step.when
    assert step.verify is not None  # its memory fell, else the playbook pages
    assert 'field="memory"' in step.verify.query
    assert 'item="{process}"' in step.verify.query
    assert rule.target == "pm2:{process}"  # one cooldown per process, shared with the crash-loop restart
    assert diagnoses_first(rule)  # "Find memory-heavy processes", "Check Node.js heap usage"
    assert probes(rule) == {"process-memory": "promql", "node-heap": "http_get"}


def test_v11_provider_quota_pages_with_the_quotas_and_resets_only_that_provider_with_approval() -> None:
    rule = rule_for("ai-trading-v1.1", alertname="RateGateProviderQuotaExhausted", item="alphavantage")
    (step,) = acts(rule)
    assert step.action == "http_request"
    assert step.params["url"].endswith("/reset/{provider}")
    assert step.approval is not None  # "emergency only - when exchanges already blocking": a human's call
    assert step.when is not None
    assert 'item="{provider}"' in step.when
    assert step.verify is not None
    assert rule.label_params["provider"].resolve("alphavantage") == "alphavantage"
    assert rule.label_params["provider"].resolve("all") is None
    assert rule.label_params["provider"].resolve("../reset") is None
    assert rule.target == "provider:{provider}"
    assert diagnoses_first(rule)  # "Check current quotas", "View rate limiting metrics"
    assert probes(rule) == {"gate-status": "http_get", "provider-quota": "promql", "gate-backoffs": "promql"}
    for other in remediator("ai-trading-v1.1").rules:
        for act in acts(other):
            if "/reset/" in str(act.params.get("url", "")):
                assert act.approval is not None, f"{other.name}/{act.name} resets a provider unasked"


def test_v11_connections_at_max_reads_the_sessions_terminates_idle_ones_then_verifies() -> None:
    rule = rule_for("ai-trading-v1.1", alertname="DatabaseConnectionsAtMax")
    (step,) = acts(rule)
    assert step.action == "postgres_terminate"
    assert step.params["states"] == ["idle", "idle in transaction"]
    assert step.verify is not None
    assert "tradeops_postgres_max_connections" in step.verify.query
    assert diagnoses_first(rule)  # "Check PostgreSQL connections"
    assert probes(rule) == {"sessions": "postgres_sessions"}


def test_v11_negative_sharpe_pages_with_evidence_and_disables_auto_trading_only_with_approval() -> None:
    rules = matching_rules(remediator("ai-trading-v1.1"), {"alertname": "NegativeSharpeWithDrawdown"})
    assert [actions(rule) for rule in rules] == [["http_request"]]
    (disable,) = acts(rules[0])
    assert disable.params["url"].endswith("/api/trading/disable")
    assert disable.approval is not None  # "consider disabling auto-trading": a human's call
    assert diagnoses_first(rules[0])
    assert probes(rules[0]) == {"performance": "http_get", "sharpe-and-drawdown": "promql"}
    for rule in remediator("ai-trading-v1.1").rules:
        for step in acts(rule):
            if "trading/disable" in str(step.params):
                assert step.approval is not None, f"{rule.name}/{step.name} disables auto-trading unasked"


def test_ai_trading_large_loss_pages_at_once_and_halts_only_with_approval() -> None:
    rules = matching_rules(remediator("ai-trading"), {"alertname": "AiTradingLargeLoss"})
    assert [actions(rule) for rule in rules] == [["http_request"]]
    (halt,) = acts(rules[0])
    assert halt.params["url"].endswith("/emergency/halt")
    assert halt.approval is not None
    assert diagnoses_first(rules[0])
    assert set(probes(rules[0]).values()) == {"http_get"}
    for rule in remediator("ai-trading").rules:
        for step in acts(rule):
            if "emergency/halt" in str(step.params):
                assert step.approval is not None, f"{rule.name}/{step.name} halts trading unasked"


def test_ai_trading_memory_leak_restarts_only_that_allowlisted_container_while_high_then_verifies_it_fell() -> None:
    # Seed 002, Memory Leaks: "restart affected service", the one the alert names; the others are never touched.
    rules = matching_rules(
        remediator("ai-trading"), {"alertname": "AiTradingContainerMemoryLeak", "container": "ai-trading-scheduler"}
    )
    assert [rule.name for rule in rules] == ["restart-leaking-service"]
    rule = rules[0]
    (step,) = acts(rule)
    assert step.action == "docker_restart"
    assert step.params["container"] == "{container}"
    allowed = rule.label_params["container"]
    assert allowed.resolve("ai-trading-trade-executor") == "ai-trading-trade-executor"
    for other in ("ai-trading-maintenance", "postgres", "redis", "tradeops-remediator", "ai-trading-.*", ""):
        assert allowed.resolve(other) is None, other
    assert step.when is not None  # one whose memory already fell is not restarted
    assert 'container="{container}"' in step.when
    assert "tradeops:ai_trading_container_memory_ratio:threshold" in step.when
    assert step.verify is not None  # its memory fell below 80 % of its limit, else the playbook pages
    assert 'tradeops_container_memory_usage_bytes{container="{container}"}' in step.verify.query
    assert "< scalar(tradeops:ai_trading_container_memory_ratio:threshold)" in step.verify.query
    assert rule.max_attempts == 1
    assert rule.target == "container:{container}"  # one cooldown per container, shared with restart-service
    assert diagnoses_first(rule)  # High Memory Usage, Diagnosis: docker stats; the service's logs
    assert probes(rule) == {"container-memory": "promql", "growth-per-15m": "promql", "service-logs": "container_logs"}


def test_ai_trading_data_corruption_enters_read_only_maintenance_then_pages_a_human() -> None:
    rules = matching_rules(remediator("ai-trading"), {"alertname": "AiTradingDataCorruption"})
    assert [actions(rule) for rule in rules] == [["http_request"], ["escalate"]]
    step = acts(rules[0])[0]
    assert step.params["url"].endswith("/maintenance/enter")
    assert step.params["json_body"]["mode"] == "read_only"


@pytest.mark.parametrize(
    ("alert", "evidence"),
    [
        ("PostgresDown", {"datastore-logs": "container_logs", "probe-failures": "promql", "disk-used": "promql"}),
        ("RabbitmqDown", {"datastore-logs": "container_logs", "probe-failures": "promql", "disk-used": "promql"}),
        ("RedisDown", {"datastore-logs": "container_logs", "probe-failures": "promql", "disk-used": "promql"}),
        ("HostCpuHigh", {"sessions": "postgres_sessions"}),
        ("HostDiskFull", {"disk-used": "promql", "backup-sizes": "promql"}),
        ("DatabaseSizeNearDiskCapacity", {"database-sizes": "promql", "disk-used": "promql"}),
        ("RedisEvictionsRising", {"redis": "redis_info"}),
    ],
)
def test_mastertrade_gathers_evidence_then_pages_where_the_runbook_leaves_the_choice_to_a_human(
    alert: str, evidence: dict[str, str]
) -> None:
    # Seed 000 Playbook 3 and Issues 2 and 4: which query to kill, which backups to delete, whether to flush or
    # restore are choices; the remediator reads, touches nothing, and pages with what it read at once.
    rule = rule_for("mastertrade", alertname=alert)
    assert diagnoses_first(rule)
    assert evidence.items() <= probes(rule).items()
    (step,) = acts(rule)
    assert step.action == "escalate"
    assert step.verify is None  # a P0 page waits for nothing but its evidence
    assert rule.max_attempts == 1


def test_no_profile_restarts_everything() -> None:
    # Seed 000 Playbook 3 step 3 (./restart.sh), seed 004 ("Don't run pm2 restart all"): never from a rule.
    for profile in PROFILES:
        for rule in remediator(profile).rules:
            for step in acts(rule):
                text = " ".join(map(str, step.params.get("argv", [])))
                assert "restart.sh" not in text, f"{profile}: {rule.name}"
                assert not re.search(r"\brestart\b.*\ball\b", text), f"{profile}: {rule.name} restarts all"
                assert "systemctl" not in text, f"{profile}: {rule.name} touches a system service"
                if step.action == "docker_restart":
                    assert step.params.get("container"), f"{profile}: {rule.name} restarts no named container"
