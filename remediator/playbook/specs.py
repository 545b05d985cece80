"""The diagnose probes a playbook step may run: read-only evidence gathering, one model per kind.

Template fields (`query`, `url`, `container`, `queue`) may hold `{param}` placeholders, filled from the rule's
allowlisted label values when the probe runs: escaped inside a PromQL string, path-quoted in a URL or queue
name, and checked against the container name pattern for a container.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from common.config import StrictModel

ProbeName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
# A container name (Docker's own pattern), or a template of one with `{param}` placeholders.
ContainerTemplate = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]*$")]
CONTAINER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class PromQLProbe(StrictModel):
    """The value of a PromQL instant query."""

    kind: Literal["promql"]
    name: ProbeName
    query: Annotated[str, Field(min_length=1, max_length=4096)]


class HttpGetProbe(StrictModel):
    """An HTTP GET of a status endpoint; the URL (placeholders filled) must be under the allowed URL prefixes."""

    kind: Literal["http_get"]
    name: ProbeName
    url: Annotated[str, Field(min_length=1, max_length=2048)]


class ContainerLogsProbe(StrictModel):
    """The last `tail` lines of a container's log (Docker engine)."""

    kind: Literal["container_logs"]
    name: ProbeName
    container: ContainerTemplate
    tail: Annotated[int, Field(ge=1, le=2000)] = 100


class PostgresSessionsProbe(StrictModel):
    """Sessions per application_name, and the `limit` longest-running and longest-idle ones (pg_stat_activity);
    `this_database_only` keeps to the DSN's database."""

    kind: Literal["postgres_sessions"]
    name: ProbeName
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    this_database_only: bool = False


class RabbitQueueProbe(StrictModel):
    """A queue's depth, consumers and oldest-message age (RabbitMQ management API)."""

    kind: Literal["rabbitmq_queue"]
    name: ProbeName
    queue: Annotated[str, Field(min_length=1, max_length=255)]
    vhost: Annotated[str, Field(min_length=1, max_length=255)] = "/"


class RedisInfoProbe(StrictModel):
    """A few fields of Redis `INFO memory` and `INFO stats`."""

    kind: Literal["redis_info"]
    name: ProbeName


DiagnoseProbe = Annotated[
    PromQLProbe | HttpGetProbe | ContainerLogsProbe | PostgresSessionsProbe | RabbitQueueProbe | RedisInfoProbe,
    Field(discriminator="kind"),
]
