"""The remediator's configuration: rules, policy bounds, maintenance windows and escalation."""

from __future__ import annotations

import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, HttpUrl, SecretStr, model_validator

from common.config import NonEmptyStr, StrictModel, load_config, required_secret, secret_from_fields
from remediator.policy.matchers import Matcher, parse_matcher

Minutes = Annotated[float, Field(gt=0, le=60 * 24 * 31)]
RuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _matcher(text: str) -> str:
    parse_matcher(text)
    return text


MatcherText = Annotated[str, AfterValidator(_matcher)]


class LabelParam(StrictModel):
    """A parameter taken from an alert label, only if its value is allowlisted: `allowed` passes the value
    through unchanged; `map` allows its keys and gives the mapped value instead (service -> container name)."""

    label: NonEmptyStr
    allowed: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] = ()
    map: dict[
        Annotated[str, Field(min_length=1, max_length=256)], Annotated[str, Field(min_length=1, max_length=256)]
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_allowlist(self) -> LabelParam:
        if bool(self.allowed) == bool(self.map):
            raise ValueError("give exactly one of allowed (a list) or map (label value -> parameter value)")
        for value in (*self.allowed, *self.map, *self.map.values()):
            if any(ch in value for ch in "\n\r\x00"):
                raise ValueError("allowlisted values may not contain control characters")
        return self

    def resolve(self, value: str) -> str | None:
        """Return the parameter value for an allowlisted label value, else None."""
        if self.map:
            return self.map.get(value)
        return value if value in self.allowed else None

    def example(self) -> str:
        """An allowed parameter value (to validate the rule's parameters at load time)."""
        return next(iter(self.map.values())) if self.map else self.allowed[0]


class RateLimit(StrictModel):
    """A token bucket: `burst` actions at once, refilled at `per_minute`."""

    per_minute: Annotated[float, Field(gt=0, le=10_000)] = 1.0
    burst: Annotated[int, Field(ge=1, le=10_000)] = 1


class RuleConfig(StrictModel):
    """One rule: which alerts it matches and the bounded first response it runs."""

    name: RuleName
    matchers: Annotated[tuple[MatcherText, ...], Field(min_length=1)]
    action: NonEmptyStr
    params: dict[str, Any] = Field(default_factory=dict)
    label_params: dict[ParamName, LabelParam] = Field(default_factory=dict)
    target: str | None = None
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 1
    retry_after_minutes: Minutes = 10.0
    cooldown_minutes: Annotated[float, Field(ge=0, le=60 * 24 * 31)] = 10.0
    rate: RateLimit = RateLimit()
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    dry_run: bool = False
    escalate_after_minutes: Minutes | None = None
    continue_matching: bool = Field(default=False, alias="continue")
    source: str = ""

    @cached_property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """The rule's matchers, parsed once (the rule is frozen)."""
        return tuple(parse_matcher(text) for text in self.matchers)

    def target_for(self, bound: dict[str, str]) -> str:
        """Return the cooldown target: the `target` template filled with bound values, or the rule name."""
        template = self.target or self.name + "".join(f":{{{key}}}" for key in sorted(bound))
        for key, value in bound.items():
            template = template.replace("{" + key + "}", value)
        return template


HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class MaintenanceWindow(StrictModel):
    """A recurring UTC window in which no action runs (seed 000: first Sunday, 02:00-06:00 UTC)."""

    name: NonEmptyStr
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None = None
    nth_of_month: Annotated[int, Field(ge=1, le=5)] | None = None
    start: Annotated[str, Field(pattern=HHMM.pattern)]
    end: Annotated[str, Field(pattern=HHMM.pattern)]


class AlertmanagerEscalation(StrictModel):
    """Escalate by posting a RemediationEscalated alert to Alertmanager's API v2."""

    url: HttpUrl
    alert_lifetime_minutes: Minutes = 24 * 60


class WebhookEscalation(StrictModel):
    """Escalate by posting JSON to a webhook (generic, Slack or PagerDuty Events v2 shape)."""

    url: HttpUrl
    shape: Literal["generic", "slack", "pagerduty"] = "generic"
    routing_key: SecretStr | None = None
    routing_key_file: Path | None = None

    @model_validator(mode="after")
    def _routing_key(self) -> WebhookEscalation:
        secret_from_fields(None, self.routing_key_file, "routing_key")
        if self.shape == "pagerduty" and self.routing_key is None and self.routing_key_file is None:
            raise ValueError("the pagerduty shape needs routing_key or routing_key_file")
        return self

    def resolved_routing_key(self) -> str:
        """Return the PagerDuty routing key ('' for other shapes)."""
        inline = self.routing_key.get_secret_value() if self.routing_key is not None else None
        return secret_from_fields(inline, self.routing_key_file, "routing_key") or ""


class EscalationConfig(StrictModel):
    """Where escalations go and how long a remediated alert may keep firing (seed 000 Escalation Matrix)."""

    alertmanager: AlertmanagerEscalation | None = None
    webhooks: tuple[WebhookEscalation, ...] = ()
    after_minutes: dict[Annotated[str, Field(pattern=r"^P[0-3]$")], Minutes] = Field(
        default_factory=lambda: {"P0": 15.0, "P1": 120.0, "P2": 480.0, "P3": 4320.0}
    )
    default_after_minutes: Minutes = 120.0
    check_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0


class CircuitBreakerConfig(StrictModel):
    """Opens an action's circuit after consecutive failures; it half-opens after open_minutes."""

    failures: Annotated[int, Field(ge=1, le=1000)] = 3
    open_minutes: Minutes = 15.0


class LimitsConfig(StrictModel):
    """Global bounds that hold whatever the rules say."""

    actions_per_hour: Annotated[int, Field(ge=0, le=100_000)] = 30
    concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    queue_size: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000
    max_body_bytes: Annotated[int, Field(ge=1024, le=256 * 1024 * 1024)] = 8 * 1024 * 1024


class TlsConfig(StrictModel):
    """Serve HTTPS with these files (as Prometheus' web config does)."""

    cert_file: Path
    key_file: Path


class BackendsConfig(StrictModel):
    """Where the actions' components are; each secret may come from a file."""

    docker_host: str | None = None
    postgres_dsn: SecretStr | None = None
    postgres_dsn_file: Path | None = None
    redis_url: SecretStr | None = None
    amqp_url: SecretStr | None = None
    amqp_url_file: Path | None = None
    alertmanager_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _files_readable(self) -> BackendsConfig:
        secret_from_fields(None, self.postgres_dsn_file, "postgres_dsn")
        secret_from_fields(None, self.amqp_url_file, "amqp_url")
        return self

    def postgres(self) -> str | None:
        """The PostgreSQL DSN, if configured."""
        inline = self.postgres_dsn.get_secret_value() if self.postgres_dsn else None
        return secret_from_fields(inline, self.postgres_dsn_file, "postgres_dsn")

    def amqp(self) -> str | None:
        """The AMQP URL, if configured."""
        inline = self.amqp_url.get_secret_value() if self.amqp_url else None
        return secret_from_fields(inline, self.amqp_url_file, "amqp_url")


class RedisStateConfig(StrictModel):
    """The shared state of replicas in Redis: dedup, attempts, limits, locks and pending escalations."""

    url: SecretStr | None = None
    url_file: Path | None = None
    # A hash tag keeps every key in one Redis Cluster slot, so the atomic scripts may touch them together.
    key_prefix: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:{}-]+$")] = "{tradeops}"
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    lock_margin_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0

    @model_validator(mode="after")
    def _one_url(self) -> RedisStateConfig:
        self.redis_url()  # neither, both, or an unreadable file is a config error now
        return self

    def redis_url(self) -> str:
        """The Redis URL, read from its file when given as url_file."""
        return required_secret(self.url, self.url_file, "url")


class PostgresAuditConfig(StrictModel):
    """The audit trail, inbox and incidents in PostgreSQL (shared by replicas)."""

    dsn: SecretStr | None = None
    dsn_file: Path | None = None
    pool_size: Annotated[int, Field(ge=1, le=100)] = 4
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0

    @model_validator(mode="after")
    def _one_dsn(self) -> PostgresAuditConfig:
        self.postgres_dsn()  # neither, both, or an unreadable file is a config error now
        return self

    def postgres_dsn(self) -> str:
        """The DSN, read from its file when given as dsn_file."""
        return required_secret(self.dsn, self.dsn_file, "dsn")


class RemediatorConfig(StrictModel):
    """The whole remediator configuration file."""

    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None
    allow_unauthenticated: bool = False
    state: Literal["memory", "redis"] = "memory"
    state_redis: RedisStateConfig | None = None
    audit: Literal["sqlite", "postgres"] = "sqlite"
    audit_path: Path = Path("/var/lib/tradeops-remediator/audit.sqlite3")
    # state: memory keeps its limits here (default: next to audit_path, see state_file()).
    state_path: Path | None = None
    audit_postgres: PostgresAuditConfig | None = None
    replica: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")] = Field(
        default_factory=lambda: re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "remediator"
    )
    audit_retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    dry_run: bool = False
    tls: TlsConfig | None = None
    allowed_url_prefixes: tuple[NonEmptyStr, ...] = ()
    backends: BackendsConfig = BackendsConfig()
    limits: LimitsConfig = LimitsConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    escalation: EscalationConfig = EscalationConfig()
    rules: tuple[RuleConfig, ...] = ()

    @model_validator(mode="after")
    def _checks(self) -> RemediatorConfig:
        secret_from_fields(None, self.webhook_token_file, "webhook_token")
        if self.state == "redis" and self.state_redis is None:
            raise ValueError("state: redis needs state_redis (url or url_file)")
        if self.audit == "postgres" and self.audit_postgres is None:
            raise ValueError("audit: postgres needs audit_postgres (dsn or dsn_file)")
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule name(s): {', '.join(duplicates)}")
        return self

    def state_file(self) -> Path:
        """Where state: memory keeps its limits: state_path, else `<audit_path stem>.state<suffix>` beside the
        audit file (`:memory:` with an in-memory audit)."""
        if self.state_path is not None:
            return self.state_path
        if str(self.audit_path) == ":memory:":
            return self.audit_path
        return self.audit_path.with_name(f"{self.audit_path.stem}.state{self.audit_path.suffix}")

    def token(self) -> str | None:
        """Return the webhook bearer token: TRADEOPS_WEBHOOK_TOKEN, else the config (inline or file)."""
        from_env = os.environ.get("TRADEOPS_WEBHOOK_TOKEN")
        if from_env:
            return from_env
        inline = self.webhook_token.get_secret_value() if self.webhook_token is not None else None
        return secret_from_fields(inline, self.webhook_token_file, "webhook_token")


def load(path: str | Path) -> RemediatorConfig:
    """Load and validate a remediator configuration file, raising ConfigError with located problems."""
    return load_config(RemediatorConfig, path)
