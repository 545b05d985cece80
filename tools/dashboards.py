"""Generates grafana_dashboards/*.json: the four tradeops dashboards, reviewable and linted by the tests.

Run `python -m tools.dashboards` after a change; a test fails when the committed JSON differs from this output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = ROOT / "grafana_dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = 'job=~"$job",instance=~"$instance"'
"""Every raw series a panel reads is narrowed by the dashboard's job and instance variables."""


def sel(extra: str = "") -> str:
    """Return a label selector body with the job and instance variables (and `extra` matchers)."""
    return SELECTOR + ("," + extra if extra else "")


@dataclass(frozen=True)
class Query:
    """One panel target."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A panel: what it shows, in which unit, and the runbook check it replaces."""

    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[float, str], ...] = ()
    mappings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotation:
    """A Prometheus annotation query: an event marked on every panel where `expr` returns a sample."""

    name: str
    expr: str
    title: str
    text: str
    tags: str
    color: str


@dataclass(frozen=True)
class Link:
    """A dashboard link; its URL may use the dashboard's variables."""

    title: str
    url: str
    tooltip: str


@dataclass(frozen=True)
class Dashboard:
    """A dashboard and the series its job/instance variables list values from, its annotation queries and links
    (with `console_url`, a text variable for the remediator's external URL that the links use)."""

    uid: str
    title: str
    description: str
    variable_metric: str
    panels: tuple[Panel, ...]
    annotations: tuple[Annotation, ...] = ()
    links: tuple[Link, ...] = ()
    console_url: str | None = None


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "allValue": ".+",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "regex": "",
        "options": [],
    }


CONSOLE_VARIABLE = "remediator_url"


def _annotation(annotation: Annotation) -> dict[str, Any]:
    return {
        "name": annotation.name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": annotation.color,
        "expr": annotation.expr,
        "step": "$__interval",
        "titleFormat": annotation.title,
        "textFormat": annotation.text,
        "tagKeys": annotation.tags,
        "useValueForTime": False,
        "target": {"refId": "Anno", "expr": annotation.expr},
    }


def _link(link: Link) -> dict[str, Any]:
    return {
        "type": "link",
        "title": link.title,
        "tooltip": link.tooltip,
        "url": link.url,
        "icon": "external link",
        "targetBlank": True,
        "includeVars": False,
        "keepTime": False,
    }


def _console_variable(default: str) -> dict[str, Any]:
    return {
        "name": CONSOLE_VARIABLE,
        "label": "Remediator URL",
        "description": "The remediator's external URL (its external_url): the console links go there.",
        "type": "textbox",
        "query": default,
        "current": {"selected": False, "text": default, "value": default},
        "options": [{"selected": True, "text": default, "value": default}],
        "hide": 0,
    }


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in panel.thresholds]
    mappings = (
        [{"type": "value", "options": {k: {"text": v, "index": i} for i, (k, v) in enumerate(panel.mappings.items())}}]
        if panel.mappings
        else []
    )
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "mappings": mappings,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {"refId": chr(ord("A") + index), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for index, q in enumerate(panel.queries)
        ],
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """Return the dashboard as Grafana JSON (schema 39), with the datasource, job and instance variables."""
    panels: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    metric = dashboard.variable_metric
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["tradeops"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [_annotation(a) for a in dashboard.annotations]},
        "links": [
            {"type": "dashboards", "tags": ["tradeops"], "asDropdown": True, "title": "tradeops"},
            *(_link(link) for link in dashboard.links),
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "refresh": 1,
                    "hide": 0,
                    "regex": "",
                    "current": {},
                    "options": [],
                },
                _variable("job", "Job", f"label_values({metric}, job)"),
                _variable("instance", "Instance", f'label_values({metric}{{job=~"$job"}}, instance)'),
                *([_console_variable(dashboard.console_url)] if dashboard.console_url is not None else []),
            ]
        },
        "panels": panels,
    }


UP_DOWN = {"0": "down", "1": "up"}
NOT_HEALTHY = sel('status!="healthy"')
COLLECTOR_PROBE = sel('probe="collectors"')
BACKUP_PROBE = sel('probe="backup"')
OVERVIEW = Dashboard(
    uid="tradeops-overview",
    title="Trading Ops Overview",
    description="The runbook's daily checklist at a glance (seed 000, Daily Operations and Monitoring & Alerts).",
    variable_metric="up",
    panels=(
        Panel(
            "Firing alerts",
            "Alerts firing now, all rule files, less the always-firing Watchdog (Monitoring & Alerts).",
            "short",
            (Query('sum(ALERTS{alertstate="firing",alertname!="Watchdog"}) or vector(0)', "firing"),),
            kind="stat",
            width=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Services down",
            "Services whose health check fails (Morning Checklist 1: all services healthy).",
            "short",
            (Query(f"count(tradeops_service_up{{{sel()}}} == 0) or vector(0)", "down"),),
            kind="stat",
            width=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Service health",
            "1 when the service answers healthy on its health endpoint (Morning Checklist 1).",
            "none",
            (Query(f"tradeops_service_up{{{sel()}}}", "{{service}}"),),
            kind="state-timeline",
            width=12,
            mappings=UP_DOWN,
        ),
        Panel(
            "API latency p95",
            "p95 of the services' own request durations; the runbook's limit is 200 ms (Monitoring & Alerts).",
            "s",
            (
                Query(
                    "histogram_quantile(0.95, sum by (job, instance, le) "
                    f"(rate(http_request_duration_seconds_bucket{{{sel()}}}[$__rate_interval])))",
                    "{{instance}}",
                ),
            ),
            thresholds=((0.2, "red"),),
        ),
        Panel(
            "Health check latency",
            "How long each health endpoint took to answer.",
            "s",
            (Query(f"tradeops_service_response_seconds{{{sel()}}}", "{{service}}"),),
        ),
        Panel(
            "Collectors by status",
            "Data collectors healthy, degraded and failed (Common Issues 1: data collection failures).",
            "short",
            (Query(f"sum by (status) (tradeops_collector_status{{{sel()}}})", "{{status}}"),),
        ),
        Panel(
            "Strategies generated against target",
            "Strategies created in the trailing window; the dashed target is the site threshold (Common Issues 2).",
            "short",
            (
                Query(f"tradeops_strategies_created_in_window{{{sel()}}}", "{{system}}"),
                Query("tradeops:strategy_generation_target:threshold", "target"),
            ),
        ),
        Panel(
            "Backup age",
            "Age of the newest file of each backup set; a day is the runbook's limit (Backup Procedures).",
            "s",
            (Query(f"time() - tradeops_backup_newest_timestamp_seconds{{{sel()}}}", "{{set}}"),),
            thresholds=((86400, "red"),),
        ),
        Panel(
            "Queue depth",
            "Messages ready per queue; 1,000 warns and 10,000 is critical (Common Issues 5).",
            "short",
            (Query(f"tradeops_queue_messages_ready{{{sel()}}}", "{{queue}}"),),
            thresholds=((1000, "orange"), (10000, "red")),
        ),
        Panel(
            "Redis memory",
            "Used memory as a share of maxmemory (absent when no limit is set; Common Issues 4).",
            "percentunit",
            (
                Query(
                    f"tradeops_redis_memory_used_bytes{{{sel()}}} / (tradeops_redis_memory_max_bytes{{{sel()}}} > 0)",
                    "{{instance_name}}",
                ),
            ),
            thresholds=((0.9, "red"),),
        ),
        Panel(
            "PostgreSQL connections",
            "Client connections as a share of max_connections; 80 % warns (Common Issues 3).",
            "percentunit",
            (
                Query(
                    f"sum by (job, instance, server) (tradeops_postgres_connections{{{sel()}}}) "
                    f"/ on (job, instance, server) tradeops_postgres_max_connections{{{sel()}}}",
                    "{{server}}",
                ),
            ),
            thresholds=((0.8, "red"),),
        ),
    ),
)

COLLECTORS = Dashboard(
    uid="tradeops-collectors",
    title="Trading Ops Data Collectors",
    description="Market data collectors: status, circuit breakers, freshness (seed 000, Common Issues 1).",
    variable_metric="tradeops_collector_status",
    panels=(
        Panel(
            "Collectors not healthy",
            "Collectors degraded or failed now.",
            "short",
            (Query(f"count(tradeops_collector_status{{{NOT_HEALTHY}}} == 1) or vector(0)", "count"),),
            kind="stat",
            width=8,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Circuit breakers open",
            "Collectors whose circuit breaker is open or half open.",
            "short",
            (Query(f"sum(tradeops_collector_circuit_breaker_open{{{sel()}}}) or vector(0)", "open"),),
            kind="stat",
            width=8,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Collector probe",
            "1 when the exporter could read /health/collectors in the scrape.",
            "none",
            (Query(f"tradeops_probe_success{{{COLLECTOR_PROBE}}}", "{{target}}"),),
            kind="stat",
            width=8,
            mappings=UP_DOWN,
        ),
        Panel(
            "Collector status",
            "Each collector's current state (healthy, degraded, failed).",
            "none",
            (Query(f"tradeops_collector_status{{{sel()}}} == 1", "{{collector}} {{status}}"),),
            kind="state-timeline",
            width=24,
        ),
        Panel(
            "Circuit breaker per collector",
            "1 while the collector's circuit breaker is open.",
            "none",
            (Query(f"tradeops_collector_circuit_breaker_open{{{sel()}}}", "{{collector}}"),),
        ),
        Panel(
            "Time since last success",
            "Seconds since each collector last fetched data.",
            "s",
            (Query(f"time() - tradeops_collector_last_success_timestamp_seconds{{{sel()}}}", "{{collector}}"),),
        ),
    ),
)

BACKUPS = Dashboard(
    uid="tradeops-backups",
    title="Trading Ops Backups",
    description="Backup freshness, size and integrity per backup set (seed 000, Backup Procedures).",
    variable_metric="tradeops_backup_files",
    panels=(
        Panel(
            "Backup age",
            "Age of the newest file per set; a day is the runbook's limit.",
            "s",
            (Query(f"time() - tradeops_backup_newest_timestamp_seconds{{{sel()}}}", "{{set}}"),),
            thresholds=((86400, "red"),),
        ),
        Panel(
            "Newest backup intact",
            "1 when the newest file passes the cheap integrity check (gzip trailer, RDB magic).",
            "none",
            (Query(f"tradeops_backup_newest_intact{{{sel()}}}", "{{set}}"),),
            kind="state-timeline",
            mappings={"0": "corrupt", "1": "intact"},
        ),
        Panel(
            "Newest backup size",
            "Size of the newest file per set; a sudden drop hints at a truncated dump.",
            "bytes",
            (Query(f"tradeops_backup_newest_size_bytes{{{sel()}}}", "{{set}}"),),
        ),
        Panel(
            "Backup files",
            "Files matching each set's glob (retention at work).",
            "short",
            (Query(f"tradeops_backup_files{{{sel()}}}", "{{set}}"),),
        ),
        Panel(
            "Backup probe",
            "1 when the backup directory could be read in the scrape.",
            "none",
            (Query(f"tradeops_probe_success{{{BACKUP_PROBE}}}", "{{target}}"),),
            kind="state-timeline",
            width=24,
            mappings=UP_DOWN,
        ),
    ),
)

REMEDIATION = Dashboard(
    uid="tradeops-remediation",
    title="Trading Ops Remediation",
    description="What the remediator decided and did, what it escalated, and the bounds it has left.",
    variable_metric="tradeops_remediator_budget_remaining",
    panels=(
        Panel(
            "Budget left",
            "Actions left in the trailing hour's global budget.",
            "short",
            (Query(f"tradeops_remediator_budget_remaining{{{sel()}}}", "{{instance}}"),),
            kind="stat",
            width=6,
            thresholds=((0, "red"), (1, "green")),
        ),
        Panel(
            "Actions in flight",
            "Actions running now.",
            "short",
            (Query(f"sum(tradeops_remediator_in_flight_actions{{{sel()}}})", "in flight"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Circuit breakers open",
            "Actions whose circuit breaker is open after repeated failures.",
            "short",
            (Query(f"sum(tradeops_remediator_circuit_open{{{sel()}}})", "open"),),
            kind="stat",
            width=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Work queue",
            "Alerts accepted and waiting to be processed.",
            "short",
            (Query(f"sum(tradeops_remediator_queue_depth{{{sel()}}})", "queued"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Decisions by reason",
            "Per-second decisions; see docs/configuration.md for the decision table.",
            "ops",
            (
                Query(
                    f"sum by (reason) (rate(tradeops_remediator_decisions_total{{{sel()}}}[$__rate_interval]))",
                    "{{reason}}",
                ),
            ),
        ),
        Panel(
            "Action outcomes",
            "Actions finished per interval, by action and outcome (after retries).",
            "short",
            (
                Query(
                    "sum by (action, outcome) "
                    f"(increase(tradeops_remediator_actions_total{{{sel()}}}[$__rate_interval]))",
                    "{{action}} {{outcome}}",
                ),
            ),
        ),
        Panel(
            "Action duration p95",
            "p95 of action durations, retries included.",
            "s",
            (
                Query(
                    "histogram_quantile(0.95, sum by (action, le) "
                    f"(rate(tradeops_remediator_action_duration_seconds_bucket{{{sel()}}}[$__rate_interval])))",
                    "{{action}}",
                ),
            ),
        ),
        Panel(
            "Escalations",
            "Escalations sent per interval, by reason; failed deliveries by channel.",
            "short",
            (
                Query(
                    f"sum by (reason) (increase(tradeops_remediator_escalations_total{{{sel()}}}[$__rate_interval]))",
                    "{{reason}}",
                ),
                Query(
                    "sum by (channel) "
                    f"(increase(tradeops_remediator_escalation_failures_total{{{sel()}}}[$__rate_interval]))",
                    "failed: {{channel}}",
                ),
            ),
        ),
        Panel(
            "Circuit breaker per rule and target",
            "1 while a rule's circuit breaker on a target is open (half-open included).",
            "none",
            (Query(f"tradeops_remediator_circuit_open{{{sel()}}}", "{{rule}} on {{target}}"),),
            kind="state-timeline",
            mappings={"0": "closed", "1": "open"},
        ),
        Panel(
            "Webhook answers",
            "Webhook requests per second by HTTP status (503: queue full, 401: bad token).",
            "reqps",
            (
                Query(
                    f"sum by (code) (rate(tradeops_remediator_webhook_requests_total{{{sel()}}}[$__rate_interval]))",
                    "{{code}}",
                ),
            ),
        ),
    ),
    annotations=(
        Annotation(
            "Remediator actions",
            f"sum by (action, outcome) (increase(tradeops_remediator_actions_total{{{sel()}}}[$__rate_interval])) > 0",
            "{{action}}: {{outcome}}",
            "the remediator ran {{action}} ({{outcome}})",
            "action,outcome",
            "blue",
        ),
        Annotation(
            "Remediator escalations",
            f"sum by (reason) (increase(tradeops_remediator_escalations_total{{{sel()}}}[$__rate_interval])) > 0",
            "escalated: {{reason}}",
            "the remediator paged a human ({{reason}})",
            "reason",
            "red",
        ),
    ),
    links=(
        Link("Console: incidents", f"${{{CONSOLE_VARIABLE}}}/console/incidents", "The remediator's console"),
        Link("Console: approvals waiting", f"${{{CONSOLE_VARIABLE}}}/console/approvals", "Steps waiting for a human"),
    ),
    console_url="http://localhost:10102",
)

DASHBOARDS = (OVERVIEW, COLLECTORS, BACKUPS, REMEDIATION)


def file_name(dashboard: Dashboard) -> str:
    """Return the committed file name of a dashboard."""
    return dashboard.uid.removeprefix("tradeops-") + ".json"


def serialise(dashboard: Dashboard) -> str:
    """Return the dashboard's committed JSON text (stable key order, trailing newline)."""
    return json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write every dashboard's JSON into grafana_dashboards/."""
    for dashboard in DASHBOARDS:
        (OUTPUT_DIR / file_name(dashboard)).write_text(serialise(dashboard))


if __name__ == "__main__":
    main()
