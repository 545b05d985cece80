"""Assembling a remediator from its configuration, and checking rules against the action registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from pydantic import ValidationError

from common.config import ConfigError, ConfigErrorDetail, validation_details
from common.http import SharedSession
from remediator.actions.base import ActionParams, ActionRegistry, substitute
from remediator.actions.builtin import EscalateAction, HttpRequestAction, IgnoreAction, LogAction
from remediator.actions.command import CommandAction
from remediator.actions.docker_restart import DockerRestartAction
from remediator.actions.postgres import PostgresCancelQueriesAction, PostgresTerminateAction
from remediator.actions.rabbitmq_purge import RabbitMQPurgeAction
from remediator.actions.redis_actions import RedisConfigSetAction, RedisDeleteKeysAction, RedisFlushDbAction
from remediator.actions.silence import AlertmanagerSilenceAction
from remediator.actions.urls import UrlError, allowed_url_prefix, canonical_url
from remediator.audit.postgres import PostgresStore
from remediator.audit.sqlite import SqliteStore
from remediator.config import DiagnoseStep, RemediatorConfig, RuleConfig, load
from remediator.escalation.outbox import DurableOutbox
from remediator.metrics import RemediatorMetrics
from remediator.playbook.evidence import EvidenceBackends
from remediator.playbook.prometheus import PrometheusClient, check_promql, fill_promql
from remediator.playbook.specs import HttpGetProbe, PromQLProbe
from remediator.runtime.engine import Engine
from remediator.state.base import AuditStore, StateBackend
from remediator.state.memory import MemoryState
from remediator.state.redis_backend import RedisState

USER_AGENT = "tradeops-remediator"


def build_registry(config: RemediatorConfig, http: SharedSession | None = None) -> ActionRegistry:
    """Create the actions this remediator can run, connected to the configured backends; their HTTP calls go
    through the process's shared session (a private, never opened one when only checking a config)."""
    http = http if http is not None else SharedSession(USER_AGENT)
    backends = config.backends
    redis_url = backends.redis()
    alertmanager = str(backends.alertmanager_url) if backends.alertmanager_url else None
    return ActionRegistry(
        [
            LogAction(),
            EscalateAction(),
            IgnoreAction(),
            HttpRequestAction(config.allowed_url_prefixes, http),
            DockerRestartAction(backends.docker_host),
            RabbitMQPurgeAction(backends.amqp()),
            PostgresTerminateAction(backends.postgres()),
            PostgresCancelQueriesAction(backends.postgres()),
            RedisDeleteKeysAction(redis_url),
            RedisFlushDbAction(redis_url),
            RedisConfigSetAction(redis_url),
            CommandAction(),
            AlertmanagerSilenceAction(alertmanager, http),
        ]
    )


def rule_errors(config: RemediatorConfig, registry: ActionRegistry) -> list[ConfigErrorDetail]:
    """Check each rule's actions (its one action, or each playbook step's) exist and their parameters validate
    (label parameters at an allowed value) within the rule's deadline, that the steps' conditions parse and
    have a Prometheus to ask, and that no step follows an unconditional escalate step (it could never run)."""
    details: list[ConfigErrorDetail] = []
    for index, rule in enumerate(config.rules):
        if not rule.steps:
            details += action_errors(f"rules[{index}]", rule.action, rule.params, rule, registry)
            continue
        names = [step.name for step in rule.steps]
        handed_over_at: str | None = None  # an escalate step without a `when` ends every run of the playbook
        for number, step in enumerate(rule.steps):
            where = f"rules[{index}].steps[{number}]"
            if names.count(step.name) > 1:
                details.append(ConfigErrorDetail(f"{where}.name", f"step name {step.name!r} is used twice"))
            if handed_over_at is not None:
                details.append(ConfigErrorDetail(where, f"never runs: step {handed_over_at!r} hands over first"))
            if isinstance(step, DiagnoseStep):
                details += diagnose_errors(where, step, rule, config)
                continue
            details += action_errors(where, step.action, step.params, rule, registry)
            escalates = step.action in registry and registry.get(step.action).escalates
            if escalates and step.when is None and handed_over_at is None:
                handed_over_at = step.name
            conditions = [("when", step.when), ("verify.query", step.verify.query if step.verify else None)]
            details += condition_errors(where, conditions, rule, config)
    return details


def condition_errors(
    where: str, conditions: list[tuple[str, str | None]], rule: RuleConfig, config: RemediatorConfig
) -> list[ConfigErrorDetail]:
    """Check a step's PromQL conditions: a Prometheus to ask, filled placeholders, an expression that parses."""
    details = []
    for field_name, query in conditions:
        if query is None:
            continue
        if config.prometheus is None:
            details.append(ConfigErrorDetail(f"{where}.{field_name}", "a condition needs `prometheus: {url}`"))
        problem = promql_problem(query, rule)
        if problem is not None:
            details.append(ConfigErrorDetail(f"{where}.{field_name}", problem))
    return details


def diagnose_errors(
    where: str, step: DiagnoseStep, rule: RuleConfig, config: RemediatorConfig
) -> list[ConfigErrorDetail]:
    """Check a diagnose step: its PromQL probes parse (with a Prometheus to ask), its URLs are allowlisted."""
    details = []
    allowed = url_allowlist(config.allowed_url_prefixes)
    sample = {name: spec.example() for name, spec in rule.label_params.items()}
    for number, probe in enumerate(step.probes):
        at = f"{where}.probes[{number}]"
        if isinstance(probe, PromQLProbe):
            details += condition_errors(at, [("query", probe.query)], rule, config)
        elif isinstance(probe, HttpGetProbe) and not allowed(fill_url(probe.url, sample)):
            problem = "the URL, filled with an allowed label value, is not under allowed_url_prefixes"
            details.append(ConfigErrorDetail(f"{at}.url", problem))
    return details


def fill_url(template: str, bound: dict[str, str]) -> str:
    """A URL template filled with (quoted) label values."""
    for key, value in bound.items():
        template = template.replace("{" + key + "}", quote(value, safe=""))
    return template


def url_allowlist(prefixes: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a URL, once normalised, lies under one of the prefixes on a path-segment boundary."""
    allowed = tuple(allowed_url_prefix(prefix) for prefix in prefixes)

    def check(url: str) -> bool:
        try:
            canonical = canonical_url(url)
        except UrlError:
            return False
        return any(canonical.within(prefix) for prefix in allowed)

    return check


def playbook_sources(config: RemediatorConfig, http: SharedSession) -> tuple[PrometheusClient | None, EvidenceBackends]:
    """The Prometheus that playbooks' conditions ask, and the backends their diagnose steps read."""
    prometheus = None
    if config.prometheus is not None:
        p = config.prometheus
        prometheus = PrometheusClient(str(p.url), http, p.timeout_seconds, p.max_bytes, p.bearer_token())
    backends = config.backends
    evidence = EvidenceBackends(
        http,
        prometheus=prometheus,
        url_allowed=url_allowlist(config.allowed_url_prefixes),
        docker_host=backends.docker_host,
        postgres_dsn=backends.postgres(),
        rabbitmq_api_url=backends.rabbitmq_api(),
        redis_url=backends.redis(),
    )
    return prometheus, evidence


def promql_problem(query: str, rule: RuleConfig) -> str | None:
    """Why a step's PromQL condition cannot run: a placeholder no label parameter fills, or a parse error."""
    sample = {name: spec.example() for name, spec in rule.label_params.items()}
    try:
        filled = fill_promql(query, sample)
    except ValueError as error:
        return str(error)
    problem = check_promql(filled)
    return f"PromQL does not parse: {problem}" if problem is not None else None


def action_errors(
    where: str, action: str, raw: dict[str, Any], rule: RuleConfig, registry: ActionRegistry
) -> list[ConfigErrorDetail]:
    """Check one action of a rule: it exists, its parameters validate, its own timeout fits the rule's deadline."""
    if action not in registry:
        return [
            ConfigErrorDetail(f"{where}.action", f"unknown action {action!r}; known: {', '.join(registry.names())}")
        ]
    sample = {name: spec.example() for name, spec in rule.label_params.items()}
    try:
        params = registry.get(action).params_model.model_validate(substitute(raw, sample))
    except ValidationError as error:
        return [ConfigErrorDetail(f"{where}.params.{d.location}", d.message) for d in validation_details(error)]
    timeout = own_timeout(params)
    if timeout is None or timeout[1] <= rule.timeout_seconds:
        return []
    name, seconds, how = timeout
    return [
        ConfigErrorDetail(
            f"{where}.params.{name}",
            f"the action's own timeout, {how} = {seconds:g}s, exceeds the rule's deadline, timeout_seconds "
            f"{rule.timeout_seconds:g}s: the action would be stopped first; raise the rule's "
            f"timeout_seconds to at least {seconds:g} or lower the action's",
        )
    ]


@runtime_checkable
class TimedParams(Protocol):
    """Parameters that add up their action's own timeouts themselves (docker_restart)."""

    def own_timeout(self) -> tuple[str, float, str]:
        """The seconds the action's own timeouts allow it, the parameter to locate it at, and how it adds up."""
        ...


def own_timeout(params: ActionParams) -> tuple[str, float, str] | None:
    """How long an action's own timeouts let it run, the parameter that sets it and how it adds up (None when it
    has none): what the parameters say themselves, else the longest of their `*timeout_seconds` fields."""
    if isinstance(params, TimedParams):
        return params.own_timeout()
    timeouts = [
        (name, float(value))
        for name, value in params
        if name.endswith("timeout_seconds") and isinstance(value, int | float) and not isinstance(value, bool)
    ]
    if not timeouts:
        return None
    name, seconds = max(timeouts, key=lambda item: item[1])
    return name, seconds, name


def load_checked(path: Path) -> RemediatorConfig:
    """Load a config and check its rules against the registry; every problem is a located ConfigError."""
    config = load(path)
    errors = rule_errors(config, build_registry(config))
    if errors:
        raise ConfigError(str(path), errors)
    return config


def build_store(config: RemediatorConfig) -> AuditStore:
    """The configured audit store (SQLite by default; PostgreSQL to share it between replicas)."""
    if config.audit == "postgres":
        assert config.audit_postgres is not None  # the config's validator guarantees it
        pg = config.audit_postgres
        return PostgresStore(pg.postgres_dsn(), config.replica, pg.pool_size, pg.timeout_seconds)
    return SqliteStore(config.audit_path)


def build_state(config: RemediatorConfig, store: AuditStore, metrics: RemediatorMetrics | None = None) -> StateBackend:
    """The configured state backend (memory, its limits in a SQLite file, by default; Redis to share it between
    replicas)."""
    if config.state == "redis":
        assert config.state_redis is not None  # the config's validator guarantees it
        redis = config.state_redis
        retention = config.audit_retention_days * 86400
        closed = config.resolved_memory_hours * 3600
        failed = metrics.read_copy_failures.inc if metrics is not None else None
        return RedisState(
            redis.redis_url(),
            redis.key_prefix,
            redis.timeout_seconds,
            retention,
            closed,
            reads=store,
            copy_failed=failed,
        )
    return MemoryState(store, config.state_file())


def build_engine(config: RemediatorConfig, metrics: RemediatorMetrics) -> Engine:
    """Create an engine with its store, state, outbox and shared HTTP session (nothing connects or runs until the
    app's cleanup contexts open them)."""
    store = build_store(config)
    outbox = DurableOutbox(config.escalation, store, config.replica, metrics, config.audit_retention_days)
    http = SharedSession(USER_AGENT)
    registry = build_registry(config, http)
    return Engine(config, registry, store, build_state(config, store, metrics), outbox, metrics, http, playbook_sources)
