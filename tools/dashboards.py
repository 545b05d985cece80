"""Generates grafana_dashboards/*.json: one dashboard set per system (MasterTrade's overview, collectors, backups
and remediation; each other profile's overview, trading panels and remediation), reviewable and linted by the tests.

Run `python -m tools.dashboards` after a change; a test fails when the committed JSON differs from this output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
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
    system: str = "mastertrade"  # the profile (deploy/profiles/<system>) whose sandbox the e2e test checks it on


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
        "tags": ["tradeops", dashboard.system],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": [_annotation(a) for a in dashboard.annotations]},
        "links": [
            {"type": "dashboards", "tags": [dashboard.system], "asDropdown": True, "title": dashboard.system},
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
FILESYSTEMS = sel('fstype!~"tmpfs|overlay|squashfs"')
IDLE = sel('mode="idle"')


def host_panels(
    cpu: tuple[float, ...], memory: tuple[float, ...], disk: tuple[float, ...], why: str
) -> tuple[Panel, ...]:
    """node_exporter's CPU, memory and disk use, with the system's warning (orange) and critical (red) levels."""

    def levels(values: tuple[float, ...]) -> tuple[tuple[float, str], ...]:
        return tuple(zip(values, ("orange", "red")[2 - len(values) :], strict=True))

    return (
        Panel(
            "Host CPU",
            f"Share of CPU time not idle, per host (node_exporter); {why}",
            "percentunit",
            (
                Query(
                    f"1 - avg by (job, instance) (rate(node_cpu_seconds_total{{{IDLE}}}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            width=8,
            thresholds=levels(cpu),
        ),
        Panel(
            "Host memory",
            f"Memory in use (1 - MemAvailable / MemTotal), per host; {why}",
            "percentunit",
            (
                Query(
                    f"1 - node_memory_MemAvailable_bytes{{{sel()}}} / node_memory_MemTotal_bytes{{{sel()}}}",
                    "{{instance}}",
                ),
            ),
            width=8,
            thresholds=levels(memory),
        ),
        Panel(
            "Host disk",
            f"Use of each real filesystem (tmpfs and overlays left out); {why}",
            "percentunit",
            (
                Query(
                    f"1 - node_filesystem_avail_bytes{{{FILESYSTEMS}}} / node_filesystem_size_bytes{{{FILESYSTEMS}}}",
                    "{{instance}} {{mountpoint}}",
                ),
            ),
            width=8,
            thresholds=levels(disk),
        ),
    )


def datastores_panel(probes: str, why: str) -> Panel:
    """1 while the exporter reaches each datastore (its probe succeeded in the scrape)."""
    selector = sel(f'probe=~"{probes}"')
    return Panel(
        "Datastores",
        f"1 when the exporter could query the datastore in the scrape; {why}",
        "none",
        (Query(f"tradeops_probe_success{{{selector}}}", "{{probe}} {{target}}"),),
        kind="state-timeline",
        width=12,
        mappings=UP_DOWN,
    )


def firing_and_services(why: str, services: str = "") -> tuple[Panel, ...]:
    """Firing alerts (the daily "firing alerts = 0" check), services down, and each service's health."""
    return (
        Panel(
            "Firing alerts",
            f"Alerts firing now, less the always-firing Watchdog; {why}",
            "short",
            (Query('sum(ALERTS{alertstate="firing",alertname!="Watchdog"}) or vector(0)', "firing"),),
            kind="stat",
            width=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Services down",
            f"Services whose health check fails now{services}.",
            "short",
            (Query(f"count(tradeops_service_up{{{sel()}}} == 0) or vector(0)", "down"),),
            kind="stat",
            width=6,
            thresholds=((1, "red"),),
        ),
        Panel(
            "Service health",
            f"1 when the service answers healthy on its health endpoint{services}.",
            "none",
            (Query(f"tradeops_service_up{{{sel()}}}", "{{service}}"),),
            kind="state-timeline",
            width=12,
            mappings=UP_DOWN,
        ),
    )


def postgres_panels(limit: float, why: str) -> tuple[Panel, ...]:
    """PostgreSQL connections against max_connections, and the databases' sizes."""
    return (
        Panel(
            "PostgreSQL connections",
            f"Client connections as a share of max_connections; {why}",
            "percentunit",
            (
                Query(
                    f"sum by (job, instance, server) (tradeops_postgres_connections{{{sel()}}}) "
                    f"/ on (job, instance, server) tradeops_postgres_max_connections{{{sel()}}}",
                    "{{server}}",
                ),
            ),
            thresholds=((limit, "red"),),
        ),
        Panel(
            "Database size",
            "Size of each configured database (growth against the disk).",
            "bytes",
            (Query(f"tradeops_postgres_database_size_bytes{{{sel()}}}", "{{database}}"),),
        ),
    )


OVERVIEW = Dashboard(
    uid="tradeops-overview",
    title="Trading Ops Overview",
    description="The runbook's daily checklist at a glance (seed 000, Daily Operations and Monitoring & Alerts).",
    variable_metric="up",
    panels=(
        *firing_and_services(
            "all rule files (Monitoring & Alerts).",
            " (Morning Checklist 1: all services healthy; Service Inventory: Grafana and the Monitoring UI too)",
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
        postgres_panels(0.8, "80 % warns (Monitoring & Alerts; Playbook 1).")[0],
        *host_panels(
            (0.8,),
            (),
            (0.8, 0.95),
            "80 % CPU is Issue 2's limit, 95 % disk Playbook 3's, and the database's share of disk 80 %.",
        ),
        datastores_panel("postgres|rabbitmq|redis", "all three are critical in the Service Inventory (P0 when down)."),
        Panel(
            "Database size",
            "Size of each database (Morning Checklist 5: monitor the growth; alert above 80 % of the disk).",
            "bytes",
            (Query(f"tradeops_postgres_database_size_bytes{{{sel()}}}", "{{database}}"),),
            width=12,
        ),
        Panel(
            "Container restarts",
            "Restarts by each container's restart policy per interval (Morning Checklist 1: restart events in 24 h; "
            "Common Issues 1: a container that restarts continuously).",
            "short",
            (
                Query(
                    f"increase(tradeops_container_restarts_total{{{sel()}}}[$__rate_interval])",
                    "{{container}}",
                ),
            ),
        ),
        Panel(
            "Slow queries",
            "Active queries running longer than each configured threshold (Common Issues 2: over 5 s).",
            "short",
            (Query(f"tradeops_postgres_slow_queries{{{sel()}}}", "over {{threshold_seconds}} s on {{server}}"),),
            thresholds=((1, "red"),),
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

# -- the other systems: an overview, the trading panels of the runbook, and the remediation set ---------------
SERVICE_5XX = 'status=~"5.."'
PM2_RESTARTS = sel('command="pm2_jlist",field="restart_time"')
PM2_MEMORY = sel('command="pm2_jlist",field="memory"')
QUOTA_REMAINING = sel('service="rate_gate",field="remaining"')
QUOTA_LIMIT = sel('service="rate_gate",field="limit"')
BACKUP_COMMANDS = sel('command=~"backup.*"')
LONG_QUERIES = sel('threshold_seconds="300"')
HEAP_USED = sel('metric="jvm.memory.used",tags="area:heap"')
HEAP_MAX = sel('metric="jvm.memory.max",tags="area:heap"')
HEALTH_SCORE = sel('field="health_score"')
DAILY_PNL = sel('field="daily_pnl_ratio"')
INTEGRITY = sel('field="integrity_errors"')
FILLED = sel('status="filled"')
MARKET_DATA = sel('field="last_update_timestamp"')


def latency_panel(metric: str, quantiles: tuple[tuple[float, float], ...], why: str) -> Panel:
    """Request duration quantiles per instance from the services' own histogram, with their limits."""
    return Panel(
        "API latency",
        f"Quantiles of the services' request durations ({metric}); {why}",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q:g}, sum by (job, instance, le) "
                f"(rate({metric}_bucket{{{sel()}}}[$__rate_interval])))",
                f"p{round(q * 100)} {{{{instance}}}}",
            )
            for q, _ in quantiles
        ),
        thresholds=tuple((limit, "red") for _, limit in quantiles[-1:]),
    )


def error_ratio_panel(metric: str, limit: float, why: str) -> Panel:
    """Share of requests answered 5xx per instance; 0, not empty, while there are none."""
    total = f"sum by (job, instance) (rate({metric}_count{{{sel()}}}[$__rate_interval]))"
    errors = f"sum by (job, instance) (rate({metric}_count{{{sel(SERVICE_5XX)}}}[$__rate_interval]))"
    return Panel(
        "Error ratio",
        f"Requests answered 5xx as a share of all ({metric}); {why}",
        "percentunit",
        (Query(f"({errors} or 0 * {total}) / {total}", "{{instance}}"),),
        thresholds=((limit, "red"),),
    )


def remediation_for(system: str, title: str, seed: str) -> Dashboard:
    """The remediation dashboard of one system: MasterTrade's panels, on that system's remediator."""
    return replace(
        REMEDIATION,
        uid=f"tradeops-{system.replace('.', '')}-remediation",
        title=f"{title} Remediation",
        description=f"What the {title} remediator decided and did, what it escalated, and its bounds ({seed}).",
        system=system,
    )


AI_TRADING_OVERVIEW = Dashboard(
    uid="tradeops-ai-trading-overview",
    title="AI Trading System Overview",
    description="Seed 002 at a glance: services 8001-8007, System Health's resource levels, the datastores.",
    variable_metric="up",
    system="ai-trading",
    panels=(
        *firing_and_services("Monitoring Issues: alerts not firing is a failure too (the Watchdog)."),
        *host_panels(
            (0.7, 0.9),
            (0.8, 0.95),
            (0.8, 0.9),
            "System Health: normal below 70/80/80 %, critical above 90/95/90 % (CPU/memory/disk).",
        ),
        datastores_panel("postgres|redis|rabbitmq", "PostgreSQL and Redis are the infrastructure layer."),
        *postgres_panels(0.8, "Application Metrics: database connections < 80 % of the pool is normal."),
        Panel(
            "Backup files",
            "Files of each backup set (Backup Types: daily at 02:00, 30 days kept locally).",
            "short",
            (Query(f"tradeops_backup_files{{{sel()}}}", "{{set}}"),),
        ),
        Panel(
            "Market data age",
            "How long ago the data collector last stored market data (curl :8001/data/status; RPO: Market Data "
            "< 1 minute).",
            "s",
            (Query(f"time() - tradeops_service_value{{{MARKET_DATA}}}", "{{service}}"),),
            thresholds=((60, "red"),),
        ),
        Panel(
            "Container memory",
            "Each service container's memory against its own limit (Memory Leaks: monitor_system.sh "
            "--memory-threshold 80; above 80 % and still growing is AiTradingContainerMemoryLeak).",
            "percentunit",
            (
                Query(
                    f"tradeops_container_memory_usage_bytes{{{sel()}}}"
                    f" / tradeops_container_memory_limit_bytes{{{sel()}}}",
                    "{{container}}",
                ),
            ),
            thresholds=((0.8, "red"),),
        ),
    ),
)

AI_TRADING_TRADING = Dashboard(
    uid="tradeops-ai-trading-trading",
    title="AI Trading System Trading",
    description="Seed 002's Trading and Application Metrics: health score, P&L, integrity, latency, errors, execution.",
    variable_metric="up",
    system="ai-trading",
    panels=(
        Panel(
            "Health score",
            "The maintenance service's health score (Key Metrics: aim for > 95 %).",
            "short",
            (Query(f"tradeops_service_value{{{HEALTH_SCORE}}}", "{{service}}"),),
            kind="stat",
            width=8,
        ),
        Panel(
            "Daily P&L",
            "The day's P&L as a share of equity (Level 4: large financial losses; tradeops pages below -5 %).",
            "percentunit",
            (Query(f"tradeops_service_value{{{DAILY_PNL}}}", "{{service}}"),),
            kind="stat",
            width=8,
        ),
        Panel(
            "Integrity errors",
            "Data integrity errors the maintenance service reports (Level 4: data corruption).",
            "short",
            (Query(f"tradeops_service_value{{{INTEGRITY}}}", "{{service}}"),),
            kind="stat",
            width=8,
            thresholds=((1, "red"),),
        ),
        latency_panel(
            "http_request_duration_seconds", ((0.95, 2.0),), "Application Metrics: < 200 ms normal, > 2 s critical."
        ),
        error_ratio_panel("http_request_duration_seconds", 0.05, "Application Metrics: > 5 % is critical."),
        Panel(
            "Trade execution p95",
            "p95 of trade execution time (Trading Metrics: < 1 s normal, > 5 s critical).",
            "s",
            (
                Query(
                    "histogram_quantile(0.95, sum by (job, instance, le) "
                    f"(rate(trading_execution_seconds_bucket{{{sel()}}}[$__rate_interval])))",
                    "{{instance}}",
                ),
            ),
            thresholds=((5, "red"),),
        ),
        Panel(
            "Order fill rate",
            "Filled orders as a share of all orders (Trading Metrics: > 95 % normal, < 90 % critical).",
            "percentunit",
            (
                Query(
                    f"sum by (job, instance) (rate(trading_orders_total{{{FILLED}}}[$__rate_interval])) "
                    f"/ sum by (job, instance) (rate(trading_orders_total{{{sel()}}}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
        ),
        Panel(
            "Locks and long queries",
            "Sessions blocked by another's lock (Database Lock Issues) and queries active over 5 minutes "
            "(Connection Pool Exhausted).",
            "short",
            (
                Query(f"tradeops_postgres_blocked_sessions{{{sel()}}}", "blocked on {{server}}"),
                Query(f"tradeops_postgres_slow_queries{{{LONG_QUERIES}}}", "over 5 min on {{server}}"),
            ),
            thresholds=((1, "red"),),
        ),
        Panel(
            "Queue depth",
            "Messages ready per queue (Application Metrics: < 100 normal, > 1,000 critical).",
            "short",
            (Query(f"tradeops_queue_messages_ready{{{sel()}}}", "{{queue}}"),),
            thresholds=((100, "orange"), (1000, "red")),
        ),
    ),
)

TRADEMASTER_OVERVIEW = Dashboard(
    uid="tradeops-trademaster-overview",
    title="TradeMaster Overview",
    description="Seed 003's Morning Checklist: firing alerts (should be 0), the service, resources, datastores.",
    variable_metric="up",
    system="trademaster",
    panels=(
        *firing_and_services('the Morning Checklist\'s "Check firing alerts (should be 0)".'),
        *host_panels(
            (0.9,),
            (0.9,),
            (0.9,),
            'the Morning Checklist\'s "Validate system resources" names no level; tradeops alerts above 90 %.',
        ),
        datastores_panel("postgres|redis", "PostgreSQL and Redis are critical dependencies 1 and 2."),
        *postgres_panels(0.8, "Incident 4: the pool exhausts before the server does; watch both."),
        Panel(
            "Full backup age",
            "Age of the newest full backup (Morning Checklist: verify backup completion, ls -lh "
            "/var/backups/postgresql/full/); tradeops alerts past 26 h.",
            "s",
            (Query(f"time() - tradeops_backup_newest_timestamp_seconds{{{sel()}}}", "{{set}}"),),
            thresholds=((93600, "red"),),
        ),
        Panel(
            "Full backup files",
            "Files in the full backup directory, and 1 when the newest is a complete gzip file.",
            "short",
            (
                Query(f"tradeops_backup_files{{{sel()}}}", "{{set}} files"),
                Query(f"tradeops_backup_newest_intact{{{sel()}}}", "{{set}} intact"),
            ),
        ),
    ),
)

TRADEMASTER_TRADING = Dashboard(
    uid="tradeops-trademaster-trading",
    title="TradeMaster Trading",
    description="Seed 003's alerts on the Spring Boot service: errors, latency, circuit breakers, the pool, orders.",
    variable_metric="up",
    system="trademaster",
    panels=(
        Panel(
            "Actuator components",
            "1 when each component of /actuator/health is UP (Incident 1 step 5: verify external services).",
            "none",
            (Query(f"tradeops_service_component_up{{{sel()}}}", "{{component}}"),),
            kind="state-timeline",
            width=24,
            mappings=UP_DOWN,
        ),
        error_ratio_panel("http_server_requests_seconds", 0.01, "HighErrorRate: P1 above 1 %."),
        latency_panel(
            "http_server_requests_seconds",
            ((0.95, 0.5), (0.99, 2.0)),
            "HighAPILatencyP95 above 500 ms, CriticalAPILatencyP99 above 2 s (our numbers).",
        ),
        Panel(
            "Circuit breakers",
            "Each resilience4j breaker's state (Incident 3: open fails fast, half_open probes recovery).",
            "none",
            (Query(f"resilience4j_circuitbreaker_state{{{sel()}}} == 1", "{{name}} {{state}}"),),
            kind="state-timeline",
            width=24,
        ),
        Panel(
            "Connection pool",
            "Hikari pool connections active, pending and the maximum (Incident 4: pool exhausted).",
            "short",
            (
                Query(f"hikaricp_connections_active{{{sel()}}}", "active {{pool}}"),
                Query(f"hikaricp_connections_pending{{{sel()}}}", "pending {{pool}}"),
                Query(f"hikaricp_connections_max{{{sel()}}}", "max {{pool}}"),
            ),
        ),
        Panel(
            "Order placement",
            "Orders placed per second, and the share that failed (OrderPlacementFailures: above 5 %).",
            "short",
            (
                Query(f"sum by (job, instance) (rate(orders_placed_total{{{sel()}}}[$__rate_interval]))", "placed/s"),
                Query(
                    f"(sum by (job, instance) (rate(orders_failed_total{{{sel()}}}[$__rate_interval])) "
                    f"or 0 * sum by (job, instance) (rate(orders_placed_total{{{sel()}}}[$__rate_interval]))) "
                    f"/ sum by (job, instance) (rate(orders_placed_total{{{sel()}}}[$__rate_interval]))",
                    "failed share",
                ),
            ),
        ),
        Panel(
            "JVM heap",
            "Heap used as a share of its maximum (actuator; Incident 2 step 3: memory pressure; 90 % is ours).",
            "percentunit",
            (
                Query(
                    f"tradeops_actuator_metric{{{HEAP_USED}}} "
                    f"/ ignoring (metric) (tradeops_actuator_metric{{{HEAP_MAX}}} > 0)",
                    "{{service}}",
                ),
            ),
            thresholds=((0.9, "red"),),
        ),
        Panel(
            "Longest running query",
            "Age of the longest active query (SlowDatabaseQueries above 5 s; Incident 4 cancels over 30 s).",
            "s",
            (Query(f"tradeops_postgres_longest_query_seconds{{{sel()}}}", "{{server}}"),),
            thresholds=((5, "orange"), (30, "red")),
        ),
    ),
)

V11_OVERVIEW = Dashboard(
    uid="tradeops-ai-trading-v11-overview",
    title="AI Trading v1.1 Overview",
    description="Seed 004's Quick Health Verification and Performance Baseline at a glance.",
    variable_metric="up",
    system="ai-trading-v1.1",
    panels=(
        *firing_and_services("P0/P1 page PD-TRADING-PRIMARY."),
        *host_panels(
            (0.7, 0.85),
            (0.85, 0.9),
            (0.85, 0.9),
            "Performance Baseline: normal below 70/85/85 %, alert above 85/90/90 % (CPU/memory/disk).",
        ),
        datastores_panel("postgres|redis", "the health check's database SELECT 1 and Redis PING."),
        *postgres_panels(0.9, "Performance Baseline: < 80 % of max normal, > 90 % alert, 100 % P0."),
        Panel(
            "PM2 process memory",
            "Each PM2 process's memory (pm2 jlist monit.memory) as a share of the host's (High Memory Usage: find "
            "memory-heavy processes; one above 30 % is restarted, ours).",
            "percentunit",
            (
                Query(
                    f"tradeops_command_value{{{PM2_MEMORY}}} / scalar(max(node_memory_MemTotal_bytes{{{sel()}}}))",
                    "{{item}}",
                ),
            ),
            thresholds=((0.3, "red"),),
        ),
    ),
)

V11_TRADING = Dashboard(
    uid="tradeops-ai-trading-v11-trading",
    title="AI Trading v1.1 Trading",
    description="Seed 004's Alert Glossary: PM2 restarts, the rate gate, strategy performance, latency, backups.",
    variable_metric="up",
    system="ai-trading-v1.1",
    panels=(
        Panel(
            "PM2 restarts",
            "Restarts of each PM2 process in the window (PM2 High Restart Rate: > 3 in 5 minutes is P0).",
            "short",
            (Query(f"increase(tradeops_command_value{{{PM2_RESTARTS}}}[$__rate_interval])", "{{item}}"),),
            thresholds=((3, "red"),),
        ),
        Panel(
            "Rate gate backoffs",
            "Backoffs per minute of the rate gate (Rate Gate API Exhaustion: > 10 per minute is P0).",
            "short",
            (
                Query(
                    f"60 * sum by (job, instance) (rate(rate_gate_backoff_count{{{sel()}}}[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            thresholds=((10, "red"),),
        ),
        Panel(
            "Provider quota left",
            "Calls left in the rate gate's quota per provider, as a share of its limit (Rate Limiting Issues: "
            "curl :3001/status; none left for 2 minutes is P1, reset only with a human's approval).",
            "percentunit",
            (
                Query(
                    f"tradeops_service_item_value{{{QUOTA_REMAINING}}} "
                    f"/ ignoring (field) tradeops_service_item_value{{{QUOTA_LIMIT}}}",
                    "{{item}}",
                ),
            ),
        ),
        Panel(
            "Sharpe ratio",
            "The strategy's rolling Sharpe ratio (P1 when below 0 for 15 minutes with drawdown above 5 %).",
            "short",
            (Query(f"trading_sharpe_ratio{{{sel()}}}", "{{instance}}"),),
        ),
        Panel(
            "Drawdown",
            "The equity curve's distance below its peak (P1 above 5 % with a negative Sharpe ratio).",
            "percentunit",
            (Query(f"trading_equity_drawdown_ratio{{{sel()}}}", "{{instance}}"),),
            thresholds=((0.05, "red"),),
        ),
        Panel(
            "Auto-trading",
            "1 while auto-trading is on (disabling it needs a human's approval).",
            "none",
            (Query(f"trading_auto_enabled{{{sel()}}}", "{{instance}}"),),
            kind="state-timeline",
            mappings={"0": "off", "1": "on"},
        ),
        latency_panel("http_request_duration_seconds", ((0.95, 2.0),), "High API Latency: p95 above 2 s is P1."),
        Panel(
            "Backup scripts",
            "Exit code of each backup script's last run (Backup Failure: != 0 is P2).",
            "short",
            (Query(f"tradeops_command_exit_code{{{BACKUP_COMMANDS}}}", "{{command}}"),),
            thresholds=((1, "red"),),
        ),
        Panel(
            "WebSocket feed",
            "1 when the market feed accepts a connection and sends a first message (WebSocket Connection Issues).",
            "none",
            (Query(f"tradeops_websocket_up{{{sel()}}}", "{{endpoint}}"),),
            kind="state-timeline",
            mappings=UP_DOWN,
        ),
        Panel(
            "Log ingestion lag",
            "promtail's lag behind the logs it ships to Loki (Loki Ingestion Lag: > 30 s is P0).",
            "s",
            (Query(f"max by (job, instance) (promtail_stream_lag_seconds{{{sel()}}})", "{{instance}}"),),
            thresholds=((30, "red"),),
        ),
    ),
)

DASHBOARDS = (
    OVERVIEW,
    COLLECTORS,
    BACKUPS,
    REMEDIATION,
    AI_TRADING_OVERVIEW,
    AI_TRADING_TRADING,
    remediation_for("ai-trading", "AI Trading System", "seed 002"),
    TRADEMASTER_OVERVIEW,
    TRADEMASTER_TRADING,
    remediation_for("trademaster", "TradeMaster", "seed 003"),
    V11_OVERVIEW,
    V11_TRADING,
    remediation_for("ai-trading-v1.1", "AI Trading v1.1", "seed 004"),
)
"""Every dashboard, by system: what `main` writes and the tests check."""


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
