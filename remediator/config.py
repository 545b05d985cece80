"""The remediator's configuration: rules, policy bounds, maintenance windows and escalation."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    HttpUrl,
    SecretStr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from common.config import (
    ConfigError,
    ConfigErrorDetail,
    NonEmptyStr,
    StrictModel,
    check_secret,
    load_config,
    read_secret_file,
    required_secret,
    secret_from_fields,
)
from remediator.actions.urls import allowed_url_prefix
from remediator.playbook.specs import DiagnoseProbe
from remediator.policy.matchers import Matcher, parse_matcher

Minutes = Annotated[float, Field(gt=0, le=60 * 24 * 31)]
RuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)  # a url_file's content is checked as url is


def _matcher(text: str) -> str:
    parse_matcher(text)
    return text


MatcherText = Annotated[str, AfterValidator(_matcher)]


def _url_prefix(text: str) -> str:
    allowed_url_prefix(text)  # normalisable, as the http_request action will compare it (actions/urls.py)
    return text


UrlPrefix = Annotated[str, AfterValidator(_url_prefix)]


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


PromQLText = Annotated[str, Field(min_length=1, max_length=4096)]


class Verify(StrictModel):
    """A PromQL condition that must hold within a deadline after a step (it holds when the query returns a
    sample); a failed, empty or ambiguous answer never counts as verified."""

    query: PromQLText
    within_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    every_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0


class Approval(StrictModel):
    """A human must approve the step (it can hurt a trading path) within this time, or the incident escalates."""

    within_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0


class ActStep(StrictModel):
    """One act step of a playbook: an action, run only if `when` holds (and, with `approval`, only once a human
    approved it), that `verify` must show helped."""

    kind: Literal["act"] = "act"
    name: RuleName
    action: NonEmptyStr
    params: dict[str, Any] = Field(default_factory=dict)
    when: PromQLText | None = None
    verify: Verify | None = None
    approval: Approval | None = None
    source: str = ""  # the runbook section this step follows


class DiagnoseStep(StrictModel):
    """A read-only step: gather the evidence the runbook's Diagnosis asks for, in parallel under one deadline, for
    the audit and every page."""

    kind: Literal["diagnose"]
    name: RuleName
    probes: Annotated[tuple[DiagnoseProbe, ...], Field(min_length=1, max_length=20)]
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    source: str = ""  # the runbook section this step follows


def _step_kind(value: Any) -> str:
    """A step's kind: `act` unless it says otherwise (the one-action shape needs no kind)."""
    kind = value.get("kind", "act") if isinstance(value, dict) else getattr(value, "kind", "act")
    return str(kind)


Step = Annotated[Annotated[ActStep, Tag("act")] | Annotated[DiagnoseStep, Tag("diagnose")], Discriminator(_step_kind)]


class RuleConfig(StrictModel):
    """One rule: which alerts it matches and the bounded response it runs: one action, or a playbook of steps
    (`steps`), tried in order until one is verified, then a human."""

    name: RuleName
    matchers: Annotated[tuple[MatcherText, ...], Field(min_length=1)]
    action: NonEmptyStr
    params: dict[str, Any] = Field(default_factory=dict)
    steps: tuple[Step, ...] = ()
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

    @model_validator(mode="before")
    @classmethod
    def _playbook_or_action(cls, data: Any) -> Any:
        # A playbook's first step is the rule's action: admission, explain and the checks see it as before.
        if isinstance(data, dict) and data.get("steps"):
            if "action" in data or "params" in data:
                raise ValueError("give either action (with params) or steps, not both")
            steps = data["steps"] if isinstance(data["steps"], list | tuple) else []
            acts = [s for s in steps if isinstance(s, dict) and s.get("kind", "act") == "act"]
            if not acts:
                raise ValueError("a playbook needs at least one act step (the last resort is always a human)")
            data = {**data, "action": acts[0].get("action"), "params": acts[0].get("params", {})}
        return data

    @cached_property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """The rule's matchers, parsed once (the rule is frozen)."""
        return tuple(parse_matcher(text) for text in self.matchers)

    @cached_property
    def playbook(self) -> tuple[ActStep | DiagnoseStep, ...]:
        """The steps the rule runs in order: its `steps`, or its one action as a one-step playbook."""
        return self.steps or (ActStep(name="act", action=self.action, params=self.params),)

    def target_for(self, bound: dict[str, str]) -> str:
        """Return the cooldown target: the `target` template filled with bound values, or the rule name."""
        template = self.target or self.name + "".join(f":{{{key}}}" for key in sorted(bound))
        for key, value in bound.items():
            template = template.replace("{" + key + "}", value)
        return template


# Maintenance windows take Alertmanager's `time_intervals` shape (its timeinterval package): every field is a
# list, an interval matches when each field it gives matches, and a window is active when any interval matches.
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")  # Alertmanager: 0 = Sunday
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
CLOCK = re.compile(r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")
OLD_WINDOW_KEYS = ("weekday", "nth_of_month", "start", "end")


def clock_minute(text: str) -> int:
    """Return the minute of the day a valid HH:MM time names (24:00 is 1440)."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"{value} is a number: quote times in YAML (unquoted 22:00 reads as the base-60 number 1320)")
    if not isinstance(value, str) or CLOCK.match(value) is None:
        raise ValueError(f"{value!r} is not a time of day: write HH:MM, 00:00 to 23:59, or 24:00")
    return value


def _range_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _split(text: str) -> tuple[str, str]:
    parts = text.strip().lower().split(":")
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"{text!r} is not a value or a start:end range")


def _number(part: str, what: str) -> int:
    try:
        return int(part)
    except ValueError:
        raise ValueError(f"{part!r} is not a valid {what}") from None


def weekday_span(text: str) -> tuple[int, int]:
    """Parse `monday` or `monday:friday` into inclusive weekday numbers, 0 = Sunday (Alertmanager's numbering)."""
    first, last = _split(text)
    for part in (first, last):
        if part not in WEEKDAYS:
            raise ValueError(f"{part!r} is not a weekday: use {', '.join(WEEKDAYS)} (or a range like monday:friday)")
    begin, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
    if begin > end:
        raise ValueError(
            f"weekday range {text!r} runs backwards: ranges go sunday to saturday, so list the days instead "
            f"(e.g. [saturday, sunday] for a weekend)"
        )
    return begin, end


def day_of_month_span(text: str) -> tuple[int, int]:
    """Parse `1`, `1:7`, `-1` or `-7:-1` (negative counts from the month's end, -1 = last day), inclusive."""
    first, last = _split(text)
    begin, end = _number(first, "day of the month"), _number(last, "day of the month")
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            hint = " (unquoted 1:7 reads in YAML as a base-60 number: quote ranges, '1:7')" if day > 31 else ""
            raise ValueError(f"{day} is not a day of the month: use 1 to 31 or -31 to -1{hint}")
    if begin < 0 < end:
        raise ValueError(f"days_of_month {text!r}: a range that starts negative must end negative")
    # As Alertmanager: reject what is backwards in every month (negative days placed in a 28-day month).
    if (begin + 28 if begin < 0 else begin) > (end + 28 if end < 0 else end):
        raise ValueError(f"days_of_month {text!r}: the end is always before the start")
    return begin, end


def month_span(text: str) -> tuple[int, int]:
    """Parse a month, by name or number (`march`, `3`), or a range (`march:may`, `3:5`), inclusive."""
    first, last = _split(text)
    begin, end = (MONTHS.index(p) + 1 if p in MONTHS else _number(p, "month") for p in (first, last))
    for month in (begin, end):
        if not 1 <= month <= 12:
            raise ValueError(f"{month} is not a month: use 1 to 12 or a name (january ... december)")
    if begin > end:
        raise ValueError(f"months {text!r}: the end month is before the start month")
    return begin, end


def year_span(text: str) -> tuple[int, int]:
    """Parse a year (`2025`) or a range of years (`2025:2027`), inclusive."""
    first, last = _split(text)
    begin, end = _number(first, "year"), _number(last, "year")
    if begin < 1:
        raise ValueError(f"{begin} is not a year")
    if begin > end:
        raise ValueError(f"years {text!r}: the end year is before the start year")
    return begin, end


def _checked(parse: Callable[[str], tuple[int, int]]) -> Callable[[str], str]:
    def check(text: str) -> str:
        parse(text)
        return text.strip().lower()

    return check


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, America/New_York, Europe/London)") from None
    return name


WeekdayText = Annotated[str, BeforeValidator(_range_text), AfterValidator(_checked(weekday_span))]
DayOfMonthText = Annotated[str, BeforeValidator(_range_text), AfterValidator(_checked(day_of_month_span))]
MonthText = Annotated[str, BeforeValidator(_range_text), AfterValidator(_checked(month_span))]
YearText = Annotated[str, BeforeValidator(_range_text), AfterValidator(_checked(year_span))]
ZoneName = Annotated[str, AfterValidator(_zone)]
ClockText = Annotated[str, BeforeValidator(_clock)]


class TimeRange(StrictModel):
    """A time of day range, start inclusive and end exclusive; 24:00 ends at midnight. Never crosses midnight."""

    start_time: ClockText
    end_time: ClockText

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if clock_minute(self.start_time) >= clock_minute(self.end_time):
            raise ValueError(
                f"start_time {self.start_time} must be before end_time {self.end_time}: a range never crosses "
                f"midnight, so write {self.start_time}-24:00 and 00:00-{self.end_time} as two intervals "
                "(the second with the next day's weekdays)"
            )
        return self

    @cached_property
    def minutes(self) -> tuple[int, int]:
        """The range as minutes of the day: start included, end excluded (0 to 1440)."""
        return clock_minute(self.start_time), clock_minute(self.end_time)


class TimeInterval(StrictModel):
    """One Alertmanager time interval: matches an instant when every field given matches its local time."""

    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[WeekdayText, ...] = ()
    days_of_month: tuple[DayOfMonthText, ...] = ()
    months: tuple[MonthText, ...] = ()
    years: tuple[YearText, ...] = ()
    location: ZoneName = "UTC"

    @model_validator(mode="after")
    def _no_empty_lists(self) -> TimeInterval:
        for field in ("times", "weekdays", "days_of_month", "months", "years"):
            if field in self.model_fields_set and not getattr(self, field):
                raise ValueError(f"{field} is an empty list: leave it out to match any {field.replace('_', ' ')}")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        """The interval's time zone (an instant is matched in its local time there)."""
        return ZoneInfo(self.location)

    @cached_property
    def spans(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """The range fields parsed into inclusive (begin, end) pairs, keyed by field name."""
        return {
            "weekdays": tuple(weekday_span(text) for text in self.weekdays),
            "days_of_month": tuple(day_of_month_span(text) for text in self.days_of_month),
            "months": tuple(month_span(text) for text in self.months),
            "years": tuple(year_span(text) for text in self.years),
        }


def _old_interval(weekday: object, days: str | None, start: str, end: str) -> str:
    fields = [f"weekdays: [{weekday}]"] if weekday else []
    fields += [f"days_of_month: ['{days}']"] if days else []
    fields += [f"times: [{{start_time: '{start}', end_time: '{end}'}}]"] if (start, end) != ("00:00", "24:00") else []
    return "{" + ", ".join(fields) + "}"


def _migration_hint(data: dict[str, Any]) -> str:
    """Write a window of the old shape (weekday, nth_of_month, start, end; UTC) as time_intervals."""
    weekday, nth = data.get("weekday"), data.get("nth_of_month")
    start, end = str(data.get("start", "00:00")), str(data.get("end", "00:00"))
    week = f"{7 * nth - 6}:{min(7 * nth, 31)}" if isinstance(nth, int) else None
    if start == end:  # the old shape's whole day
        intervals = [_old_interval(weekday, week, "00:00", "24:00")]
    elif start < end:
        intervals = [_old_interval(weekday, week, start, end)]
    else:  # meant to cross midnight: the hours after it fall on the next day
        following = WEEKDAYS[(WEEKDAYS.index(weekday) + 1) % 7] if weekday in WEEKDAYS else None
        after = f"{7 * nth - 5}:{min(7 * nth + 1, 31)}" if isinstance(nth, int) else None
        intervals = [_old_interval(weekday, week, start, "24:00"), _old_interval(following, after, "00:00", end)]
    return f"{{name: {data.get('name', '...')}, time_intervals: [{', '.join(intervals)}]}}"


class MaintenanceWindow(StrictModel):
    """A named maintenance window, active when any of its Alertmanager-shaped time_intervals matches (seed 000:
    first Sunday of the month, 02:00-06:00 UTC)."""

    name: NonEmptyStr
    time_intervals: tuple[TimeInterval, ...]

    @model_validator(mode="before")
    @classmethod
    def _not_the_old_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in OLD_WINDOW_KEYS):
            raise ValueError(
                "weekday/nth_of_month/start/end is the old window shape, no longer read (it would change meaning); "
                "windows are Alertmanager time_intervals now, in UTC unless an interval sets location. This one is: "
                + _migration_hint(data)
            )
        return data

    @field_validator("time_intervals")
    @classmethod
    def _some_interval(cls, intervals: tuple[TimeInterval, ...]) -> tuple[TimeInterval, ...]:
        if not intervals:
            raise ValueError("give at least one interval ({} matches every instant)")
        return intervals


class AlertmanagerEscalation(StrictModel):
    """Escalate by posting a RemediationEscalated alert to Alertmanager's API v2."""

    url: HttpUrl
    alert_lifetime_minutes: Minutes = 24 * 60


class WebhookEscalation(StrictModel):
    """Escalate by posting JSON to a webhook (generic, Slack or PagerDuty Events v2 shape). A webhook URL that
    is itself a secret (Slack's) may come from a file (`url_file`)."""

    url: HttpUrl | None = None
    url_file: Path | None = None
    shape: Literal["generic", "slack", "pagerduty"] = "generic"
    routing_key: SecretStr | None = None
    routing_key_file: Path | None = None

    @model_validator(mode="after")
    def _routing_key(self) -> WebhookEscalation:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("give exactly one of url or url_file")
        self.resolved_url()  # an unreadable file or a file that holds no http(s) URL is a config error now
        secret_from_fields(None, self.routing_key_file, "routing_key")
        if self.shape == "pagerduty" and self.routing_key is None and self.routing_key_file is None:
            raise ValueError("the pagerduty shape needs routing_key or routing_key_file")
        return self

    def resolved_url(self) -> str:
        """The webhook URL, read from its file when given as url_file (the file's content is never echoed)."""
        if self.url is not None:
            return str(self.url)
        assert self.url_file is not None
        url = read_secret_file(self.url_file).strip()
        try:
            _HTTP_URL.validate_python(url)
        except ValidationError:
            raise ValueError(f"url_file {self.url_file} does not hold an http(s) URL") from None
        return url

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
    # The durable outbox (remediator/escalation/sender.py; docs/configuration.md, "Escalation outbox").
    max_pages_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 10
    backoff_initial_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    send_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    poll_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0

    @model_validator(mode="after")
    def _outbox_bounds(self) -> EscalationConfig:
        if self.lease_seconds <= self.send_timeout_seconds:
            raise ValueError("lease_seconds must exceed send_timeout_seconds (a lease covers one send)")
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self


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


class PrometheusConfig(StrictModel):
    """Where playbooks' `when` and `verify` queries go: a Prometheus (or compatible) query API."""

    url: HttpUrl
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    bearer_token_file: Path | None = None

    def bearer_token(self) -> str | None:
        """The bearer token for the query API, read from its file, if one is set."""
        return secret_from_fields(None, self.bearer_token_file, "bearer_token")


class BackendsConfig(StrictModel):
    """Where the actions' components are; each secret may come from a file."""

    # RabbitMQ's management API for diagnose steps (credentials in the URL's userinfo, or from the file).
    rabbitmq_api_url: SecretStr | None = None
    rabbitmq_api_url_file: Path | None = None

    docker_host: str | None = None
    postgres_dsn: SecretStr | None = None
    postgres_dsn_file: Path | None = None
    redis_url: SecretStr | None = None
    redis_url_file: Path | None = None
    amqp_url: SecretStr | None = None
    amqp_url_file: Path | None = None
    alertmanager_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _files_readable(self) -> BackendsConfig:
        secret_from_fields(None, self.postgres_dsn_file, "postgres_dsn")
        secret_from_fields(None, self.amqp_url_file, "amqp_url")
        secret_from_fields(None, self.rabbitmq_api_url_file, "rabbitmq_api_url")
        self.redis()
        return self

    def redis(self) -> str | None:
        """The Redis URL of the Redis actions and diagnose steps, if configured."""
        inline = self.redis_url.get_secret_value() if self.redis_url else None
        return secret_from_fields(inline, self.redis_url_file, "redis_url")

    def postgres(self) -> str | None:
        """The PostgreSQL DSN, if configured."""
        inline = self.postgres_dsn.get_secret_value() if self.postgres_dsn else None
        return secret_from_fields(inline, self.postgres_dsn_file, "postgres_dsn")

    def rabbitmq_api(self) -> str | None:
        """RabbitMQ's management API URL (with credentials), if configured."""
        inline = self.rabbitmq_api_url.get_secret_value() if self.rabbitmq_api_url else None
        return secret_from_fields(inline, self.rabbitmq_api_url_file, "rabbitmq_api_url")

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
    prometheus: PrometheusConfig | None = None
    # Where people reach this remediator (the console, approval links in pages); links are left out without it.
    external_url: HttpUrl | None = None
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
    # A resolved incident is remembered this long, so that a late firing copy of it (Alertmanager HA, a lagging
    # replica, a resumed inbox) never acts; far longer than Alertmanager's resends of one notification.
    resolved_memory_hours: Annotated[float, Field(ge=1, le=24 * 3650)] = 24 * 7
    dry_run: bool = False
    tls: Any = None  # moved to --web.config.file; refused with a located error by _tls_moved
    allowed_url_prefixes: tuple[UrlPrefix, ...] = ()
    backends: BackendsConfig = BackendsConfig()
    limits: LimitsConfig = LimitsConfig()
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    maintenance_windows: tuple[MaintenanceWindow, ...] = ()
    escalation: EscalationConfig = EscalationConfig()
    rules: tuple[RuleConfig, ...] = ()

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_moved(cls, value: Any) -> None:
        raise ValueError(
            "the remediator's tls key is replaced by --web.config.file (exporter-toolkit's tls_server_config: "
            "cert_file, key_file); remove it here"
        )

    @field_validator("webhook_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value(), "webhook_token")
        return value

    @field_validator("webhook_token_file")
    @classmethod
    def _token_file_not_blank(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_secret_file(value)  # unreadable, empty or white space only is an error here, at its field
        return value

    @model_validator(mode="after")
    def _one_token(self) -> RemediatorConfig:
        if self.webhook_token is not None and self.webhook_token_file is not None:
            raise ValueError("give webhook_token or webhook_token_file, not both")
        return self

    @model_validator(mode="after")
    def _checks(self) -> RemediatorConfig:
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
        """Return the webhook bearer token: TRADEOPS_WEBHOOK_TOKEN, else the config (inline or file), else None;
        a blank one anywhere raises ValueError (never "no token")."""
        from_env = token_from_env()
        if from_env is not None:
            return from_env
        inline = self.webhook_token.get_secret_value() if self.webhook_token is not None else None
        return secret_from_fields(inline, self.webhook_token_file, "webhook_token")


TOKEN_ENV = "TRADEOPS_WEBHOOK_TOKEN"  # noqa: S105 - the variable's name, not a token


def token_from_env() -> str | None:
    """Return TRADEOPS_WEBHOOK_TOKEN when set; set but empty or white space only raises ValueError."""
    value = os.environ.get(TOKEN_ENV)
    if value is not None and not value.strip():
        raise ValueError("is set but empty or white space only")
    return value


def load(path: str | Path) -> RemediatorConfig:
    """Load and validate a remediator configuration file (and TRADEOPS_WEBHOOK_TOKEN), raising ConfigError with
    located problems."""
    config = load_config(RemediatorConfig, path)
    try:
        token_from_env()
    except ValueError as error:
        raise ConfigError(str(path), [ConfigErrorDetail(f"env {TOKEN_ENV}", str(error))]) from None
    return config
