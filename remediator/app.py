"""Assembling a remediator from its configuration, and checking rules against the action registry."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from common.config import ConfigError, ConfigErrorDetail, validation_details
from remediator.actions.base import ActionRegistry, substitute
from remediator.actions.builtin import EscalateAction, HttpRequestAction, LogAction
from remediator.actions.command import CommandAction
from remediator.actions.docker_restart import DockerRestartAction
from remediator.actions.postgres import PostgresCancelQueriesAction, PostgresTerminateAction
from remediator.actions.rabbitmq_purge import RabbitMQPurgeAction
from remediator.actions.redis_actions import RedisConfigSetAction, RedisDeleteKeysAction, RedisFlushDbAction
from remediator.actions.silence import AlertmanagerSilenceAction
from remediator.config import RemediatorConfig, load
from remediator.engine import Engine
from remediator.escalation import Escalator
from remediator.limits import MemoryLimits
from remediator.metrics import RemediatorMetrics
from remediator.store import Store


def build_registry(config: RemediatorConfig) -> ActionRegistry:
    """Create the actions this remediator can run, connected to the configured backends."""
    backends = config.backends
    redis_url = backends.redis_url.get_secret_value() if backends.redis_url else None
    alertmanager = str(backends.alertmanager_url) if backends.alertmanager_url else None
    return ActionRegistry(
        [
            LogAction(),
            EscalateAction(),
            HttpRequestAction(config.allowed_url_prefixes),
            DockerRestartAction(backends.docker_host),
            RabbitMQPurgeAction(backends.amqp()),
            PostgresTerminateAction(backends.postgres()),
            PostgresCancelQueriesAction(backends.postgres()),
            RedisDeleteKeysAction(redis_url),
            RedisFlushDbAction(redis_url),
            RedisConfigSetAction(redis_url),
            CommandAction(),
            AlertmanagerSilenceAction(alertmanager),
        ]
    )


def rule_errors(config: RemediatorConfig, registry: ActionRegistry) -> list[ConfigErrorDetail]:
    """Check each rule's action exists and its parameters validate (label parameters at an allowed value)."""
    details: list[ConfigErrorDetail] = []
    for index, rule in enumerate(config.rules):
        where = f"rules[{index}]"
        if rule.action not in registry:
            details.append(
                ConfigErrorDetail(
                    f"{where}.action", f"unknown action {rule.action!r}; known: {', '.join(registry.names())}"
                )
            )
            continue
        sample = {name: spec.example() for name, spec in rule.label_params.items()}
        model = registry.get(rule.action).params_model
        try:
            model.model_validate(substitute(rule.params, sample))
        except ValidationError as error:
            for detail in validation_details(error):
                details.append(ConfigErrorDetail(f"{where}.params.{detail.location}", detail.message))
    return details


def load_checked(path: Path) -> RemediatorConfig:
    """Load a config and check its rules against the registry; every problem is a located ConfigError."""
    config = load(path)
    errors = rule_errors(config, build_registry(config))
    if errors:
        raise ConfigError(str(path), errors)
    return config


def build_engine(config: RemediatorConfig, metrics: RemediatorMetrics, limits: MemoryLimits | None = None) -> Engine:
    """Create an engine with its store, limits and escalator (nothing runs until start())."""
    limits = limits or MemoryLimits(
        config.limits.actions_per_hour, config.circuit_breaker.failures, config.circuit_breaker.open_minutes * 60
    )
    return Engine(
        config, build_registry(config), Store(config.audit_path), limits, Escalator(config.escalation), metrics
    )
