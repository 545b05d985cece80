"""The exporter's configuration file: which probes run against which targets (see docs/configuration.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyUrl, Field, HttpUrl, SecretStr, UrlConstraints, model_validator

from common.config import (
    NonEmptyStr,
    PositiveSeconds,
    StrictModel,
    load_config,
    required_secret,
    secret_from_fields,
)
from common.http_auth import HttpAuth
from common.regex import Regex as CompiledRegex
from common.regex import RegexError, compile_re2

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (letters, digits, _; optionally schema.name)")
    return value


BACKREFERENCE = re.compile(r"(?<!\\)\\[1-9]|\(\?P=")


def _regex(value: str) -> str:
    # Queue patterns are RE2 (linear time, Go's syntax, as Prometheus' relabelling) and are matched as one
    # alternation (one match per queue name, not one per pattern), so each must be a whole regex on its own: it
    # compiles alone (no `a)|(b` escaping its group) and inside `(?:...)`, where RE2 scopes a flag such as a
    # leading `(?i)` to that pattern alone. RE2 has no backreferences; they get a message that says so.
    if BACKREFERENCE.search(value):
        raise ValueError(f"invalid regular expression {value!r}: backreferences are not supported (RE2)")
    try:
        compile_re2(value)
        compile_re2(f"(?:{value})")
    except RegexError as error:
        raise ValueError(f"invalid regular expression {value!r} (RE2 syntax): {error}") from None
    return value


def alternation(patterns: tuple[str, ...]) -> CompiledRegex | None:
    """Compile full-match patterns into one RE2 alternation (None for no patterns)."""
    return compile_re2("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def _metric_name(value: str) -> str:
    if not METRIC_NAME.match(value) or value.startswith("__"):
        raise ValueError(f"{value!r} is not a valid Prometheus metric name")
    return value


def _label_name(value: str) -> str:
    if not LABEL_NAME.match(value) or value.startswith("__"):
        raise ValueError(f"{value!r} is not a valid Prometheus label name")
    return value


SqlIdentifier = Annotated[str, AfterValidator(_identifier)]
Regex = Annotated[str, AfterValidator(_regex)]
MetricName = Annotated[str, AfterValidator(_metric_name)]
LabelName = Annotated[str, AfterValidator(_label_name)]
TargetName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
MaxSeries = Annotated[int, Field(ge=1, le=100_000)]


class ProbeConfig(StrictModel):
    """What every probe has: a target name (the `target` label) and its own timeout."""

    name: TargetName
    timeout_seconds: PositiveSeconds = 5.0


class DsnConfig(ProbeConfig):
    """A probe that connects to PostgreSQL; the DSN may come from a file (`dsn_file`)."""

    dsn: SecretStr | None = None
    dsn_file: Path | None = None

    @model_validator(mode="after")
    def _one_dsn(self) -> DsnConfig:
        self.resolved_dsn()  # neither, both, or an unreadable file is a config error now
        return self

    def resolved_dsn(self) -> str:
        """Return the DSN, read from its file when given as dsn_file."""
        return required_secret(self.dsn, self.dsn_file, "dsn")


class CommandJsonConfig(StrictModel):
    """How to read numbers from a JSON document (a command's output, a health body): items, a label, value fields."""

    list_path: str = ""
    label_field: NonEmptyStr = "name"
    value_fields: Annotated[dict[LabelName, NonEmptyStr], Field(min_length=1)]


class ServiceHealthConfig(ProbeConfig):
    """HTTP health endpoint of one service (seed 000, Service Inventory; seed 003, actuator)."""

    url: HttpUrl
    auth: HttpAuth | None = None  # bearer or basic, the secret from a file read at each scrape
    criticality: Literal["critical", "high", "medium", "low"] = "high"
    status_path: str | None = "status"
    healthy_values: tuple[NonEmptyStr, ...] = ("healthy", "UP", "ok", "OK")
    components_path: str | None = None
    max_components: MaxSeries = 50
    # Numbers read from the same health document, as tradeops_service_value{service,field} (seed 002's
    # `/health | jq .health_score`): field name -> dotted path.
    value_paths: dict[Annotated[str, AfterValidator(_label_name)], NonEmptyStr] = Field(default_factory=dict)
    # Numbers of each item of a list (or object) in the same document, as tradeops_service_item_value{service,
    # item,field} (seed 004's rate gate `/status`: per-provider quotas); at most max_items series.
    item_values: CommandJsonConfig | None = None
    max_items: MaxSeries = 100


class CollectorsConfig(ProbeConfig):
    """MasterTrade's /health/collectors (seed 000, Daily Operations 3)."""

    url: HttpUrl
    auth: HttpAuth | None = None  # bearer or basic, the secret from a file read at each scrape
    max_series: MaxSeries = 1000


class GenerationRunsConfig(StrictModel):
    """Optional table of generation runs, for the size of the last completed run."""

    table: SqlIdentifier = "generation_runs"
    completed_at_column: SqlIdentifier = "completed_at"
    count_column: SqlIdentifier = "generated"


class StrategyGenerationConfig(DsnConfig):
    """Strategy generation read from PostgreSQL (seed 000, Daily Operations 2 and Issue 5)."""

    table: SqlIdentifier = "strategies"
    created_at_column: SqlIdentifier = "created_at"
    status_column: SqlIdentifier | None = "status"
    active_value: str = "active"
    window_hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24.0
    runs: GenerationRunsConfig | None = None


class BackupConfig(ProbeConfig):
    """One backup set: files matched by a glob (seed 000, Daily Operations 6 and Backup & Recovery)."""

    path_glob: NonEmptyStr
    integrity: Literal["none", "gzip", "rdb"] = "none"
    integrity_max_bytes: Annotated[int, Field(ge=0, le=1 << 34)] = 256 * 1024 * 1024

    @model_validator(mode="after")
    def _absolute(self) -> BackupConfig:
        if not self.path_glob.startswith("/"):
            raise ValueError("path_glob must be an absolute path")
        if "*" in str(Path(self.path_glob).parent) or "?" in str(Path(self.path_glob).parent):
            raise ValueError("only the file name part of path_glob may hold wildcards")
        return self


def _combinable(*lists: tuple[str, ...]) -> None:
    for patterns in lists:
        try:
            alternation(patterns)
        except RegexError as error:  # e.g. more than RE2's memory bound for one program
            raise ValueError(f"patterns {list(patterns)} cannot be combined: {error}") from None


class RabbitMQConfig(ProbeConfig):
    """Queue depth (seed 000, Issue 3): the management API for all queues, or AMQP for named ones."""

    management_url: HttpUrl | None = None
    username: str = "guest"
    password: SecretStr | None = None
    password_file: Path | None = None
    vhost: str | None = None
    include: tuple[Regex, ...] = ()
    exclude: tuple[Regex, ...] = ()
    max_queues: MaxSeries = 2000
    amqp_url: SecretStr | None = None
    amqp_url_file: Path | None = None
    queues: tuple[NonEmptyStr, ...] = ()

    @model_validator(mode="after")
    def _one_source(self) -> RabbitMQConfig:
        amqp = self.amqp_url is not None or self.amqp_url_file is not None
        if (self.management_url is None) != amqp:
            raise ValueError("give exactly one of management_url or amqp_url (or amqp_url_file)")
        if amqp and not self.queues:
            raise ValueError("amqp_url needs the queues to declare passively")
        self.resolved_amqp_url()  # both, or an unreadable file, is a config error now
        secret_from_fields(None, self.password_file, "password")
        _combinable(self.include, self.exclude)
        return self

    def resolved_amqp_url(self) -> str | None:
        """Return the AMQP URL, read from its file when given as amqp_url_file (None with management_url)."""
        inline = self.amqp_url.get_secret_value() if self.amqp_url is not None else None
        return secret_from_fields(inline, self.amqp_url_file, "amqp_url")

    def resolved_password(self) -> str:
        """Return the management API password (default guest)."""
        inline = self.password.get_secret_value() if self.password is not None else None
        return secret_from_fields(inline, self.password_file, "password") or "guest"


class RedisConfig(ProbeConfig):
    """Redis memory and clients (seed 000, Issue 4 and Evening Checklist 4)."""

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    password_file: Path | None = None

    @model_validator(mode="after")
    def _password_readable(self) -> RedisConfig:
        secret_from_fields(None, self.password_file, "password")
        return self


class PostgresConfig(DsnConfig):
    """PostgreSQL connections, sizes, locks and slow queries (seed 000, Playbook 1, Database Operations and Issue 2;
    seed 002, Database Lock Issues)."""

    databases: tuple[NonEmptyStr, ...] = ()
    # Active queries running longer than each threshold are counted (seed 000 Issue 2: 5 s; seed 002: 5 minutes).
    slow_query_seconds: Annotated[tuple[PositiveSeconds, ...], Field(max_length=10)] = (5.0,)


DOCKER_HOST = re.compile(r"^(unix://(/[^\x00]+)|(tcp|http)://([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5}))$")


def _docker_host(value: str) -> str:
    if not DOCKER_HOST.match(value):
        raise ValueError(f"{value!r} is not unix:///absolute/path or tcp://host:port (TLS is not supported)")
    return value


class ContainersConfig(ProbeConfig):
    """The containers of one Docker engine: restarts, running, last start (seed 000, Morning Checklist 1), and
    optionally memory (seed 002, Memory Leaks)."""

    docker_host: Annotated[str, AfterValidator(_docker_host)] = "unix:///var/run/docker.sock"
    include: tuple[Regex, ...] = ()
    exclude: tuple[Regex, ...] = ()
    max_containers: MaxSeries = 200
    # Each running container's memory usage and limit from one-shot stats (seed 002, Memory Leaks): one more
    # Engine API call per running container and scrape, so off unless asked for.
    memory: bool = False

    @model_validator(mode="after")
    def _patterns_combine(self) -> ContainersConfig:
        _combinable(self.include, self.exclude)
        return self


WebSocketUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["ws", "wss"], host_required=True)]


class WebSocketConfig(ProbeConfig):
    """A WebSocket endpoint that must accept a connection, and optionally send a first message (seed 004,
    WebSocket Connection Issues: `wscat -c ws://localhost:8000/ws/market`)."""

    url: WebSocketUrl
    auth: HttpAuth | None = None  # bearer or basic, the secret from a file read at each scrape
    send: Annotated[str, Field(min_length=1, max_length=4096)] | None = None  # e.g. a subscription, once connected
    expect_message: bool = False
    max_message_bytes: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] = 1024 * 1024


ActuatorName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]


class ActuatorMetricConfig(StrictModel):
    """One Micrometer meter read from /actuator/metrics/{metric}, narrowed by tags, one of its statistics."""

    metric: ActuatorName
    tags: dict[ActuatorName, Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^,]+$")]] = Field(
        default_factory=dict
    )
    statistic: ActuatorName = "VALUE"


class ActuatorConfig(ProbeConfig):
    """Meters of a Spring Boot actuator, e.g. JVM memory (seed 003, Incident 2 step 3: jvm.memory.used)."""

    base_url: HttpUrl  # the actuator's root: http://host:8080/actuator
    auth: HttpAuth | None = None
    metrics: Annotated[tuple[ActuatorMetricConfig, ...], Field(min_length=1, max_length=50)]


class SqlMetricConfig(StrictModel):
    """One gauge taken from a column of an SQL probe's result rows."""

    name: MetricName
    help: NonEmptyStr
    value_column: NonEmptyStr
    label_columns: tuple[LabelName, ...] = ()


class SqlConfig(DsnConfig):
    """A read-only SQL query whose rows become gauges."""

    query: NonEmptyStr
    metrics: Annotated[tuple[SqlMetricConfig, ...], Field(min_length=1)]
    max_series: MaxSeries = 1000


class CommandConfig(ProbeConfig):
    """A command run without a shell: its exit code and, optionally, numbers from its output."""

    argv: Annotated[tuple[NonEmptyStr, ...], Field(min_length=1)]
    output: Literal["none", "number", "json"] = "none"
    json_values: CommandJsonConfig | None = None
    max_series: MaxSeries = 500
    max_output_bytes: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] = 4 * 1024 * 1024

    @model_validator(mode="after")
    def _json_needs_fields(self) -> CommandConfig:
        if (self.output == "json") != (self.json_values is not None):
            raise ValueError("json_values is required with output: json, and only then")
        return self


class ProbesConfig(StrictModel):
    """Every probe instance, by type."""

    service_health: tuple[ServiceHealthConfig, ...] = ()
    collectors: tuple[CollectorsConfig, ...] = ()
    strategy_generation: tuple[StrategyGenerationConfig, ...] = ()
    backups: tuple[BackupConfig, ...] = ()
    rabbitmq: tuple[RabbitMQConfig, ...] = ()
    redis: tuple[RedisConfig, ...] = ()
    postgres: tuple[PostgresConfig, ...] = ()
    sql: tuple[SqlConfig, ...] = ()
    command: tuple[CommandConfig, ...] = ()
    containers: tuple[ContainersConfig, ...] = ()
    websocket: tuple[WebSocketConfig, ...] = ()
    actuator: tuple[ActuatorConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_targets(self) -> ProbesConfig:
        for kind in type(self).model_fields:
            names = [probe.name for probe in getattr(self, kind)]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name(s) {', '.join(duplicates)}")
        return self


DEFAULT_MAX_CONCURRENT_PROBES = 16


class ExporterSettings(StrictModel):
    """Settings of the exporter process itself."""

    default_scrape_timeout_seconds: PositiveSeconds = 10.0
    scrape_timeout_margin_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    max_response_bytes: Annotated[int, Field(ge=1024, le=512 * 1024 * 1024)] = 1024 * 1024
    max_concurrent_probes: Annotated[int, Field(ge=1, le=1024)] = DEFAULT_MAX_CONCURRENT_PROBES


class ExporterConfig(StrictModel):
    """The whole exporter configuration file."""

    exporter: ExporterSettings = ExporterSettings()
    probes: ProbesConfig = ProbesConfig()


def load(path: str | Path) -> ExporterConfig:
    """Load and validate an exporter configuration file, raising ConfigError with located problems."""
    return load_config(ExporterConfig, path)
