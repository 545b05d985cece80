"""Diagnose evidence: a playbook's read-only probes run in parallel under one deadline, each answer bounded in size
and scrubbed of secrets, for the audit and every page. A probe that fails, times out or has no backend configured
is reported as such; gathering never raises."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
import asyncpg
import docker
import docker.errors
import redis.asyncio
import redis.exceptions

from common.http import SharedSession
from remediator.actions.base import TransientActionError
from remediator.actions.docker_restart import DOCKER_API_VERSION, engine_reachable
from remediator.actions.urls import UrlError, fill_url_template
from remediator.playbook.prometheus import PLACEHOLDER, PrometheusClient, fill_promql
from remediator.playbook.scrub import bounded, scrub
from remediator.playbook.specs import (
    CONTAINER_NAME,
    ContainerLogsProbe,
    DiagnoseProbe,
    HttpGetProbe,
    PostgresSessionsProbe,
    PromQLProbe,
    RabbitQueueProbe,
    RedisInfoProbe,
)

# After the deadline, cancelled probes get this long to unwind before they are reported and left behind.
CANCEL_GRACE_SECONDS = 1.0
REDIS_MEMORY_FIELDS = (
    "used_memory_human",
    "used_memory_rss_human",
    "used_memory_peak_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
)
REDIS_STATS_FIELDS = (
    "instantaneous_ops_per_sec",
    "rejected_connections",
    "evicted_keys",
    "expired_keys",
    "keyspace_hits",
    "keyspace_misses",
)


@dataclass(frozen=True)
class Evidence:
    """One probe's answer: its name, whether it worked, and a bounded, scrubbed text of what it saw (or why not)."""

    name: str
    ok: bool
    text: str


@dataclass(frozen=True)
class EvidenceBackends:
    """What the probes talk to; a probe whose backend is None answers "not configured". `url_allowed` says whether
    a filled URL is under the configured allowed URL prefixes (the caller normalises and checks it)."""

    http: SharedSession
    prometheus: PrometheusClient | None = None
    url_allowed: Callable[[str], bool] | None = None
    docker_host: str | None = None
    postgres_dsn: str | None = field(default=None, repr=False)
    rabbitmq_api_url: str | None = field(default=None, repr=False)
    rabbitmq_user: str | None = None
    rabbitmq_password: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)


class ProbeError(Exception):
    """A probe could not gather its evidence; the message says why (it is scrubbed before it is shown)."""


class NotConfiguredError(ProbeError):
    """The probe's backend is not configured."""


@dataclass(frozen=True)
class _Run:
    """One probe's run: what it needs, and how long it may take."""

    bound: Mapping[str, str]
    backends: EvidenceBackends
    timeout: float
    max_bytes: int


def fill_plain(template: str, bound: Mapping[str, str], quote_values: bool = False) -> str:
    """Replace `{name}` placeholders by bound values (path-quoted if asked); ProbeError for one nothing binds."""

    def replaced(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in bound:
            raise ProbeError(f"placeholder {{{name}}} is not bound by any label parameter")
        return quote(bound[name], safe="") if quote_values else bound[name]

    return PLACEHOLDER.sub(replaced, template)


def _tail(raw: bytes, max_bytes: int) -> str:
    """The end of a log, at most max_bytes, from a whole line on, scrubbed."""
    if len(raw) <= max_bytes:
        return bounded(raw.decode(errors="replace"), max_bytes)
    text = raw[-max_bytes:].decode(errors="ignore")
    newline = text.find("\n")
    if newline < 0:  # no whole line: drop the first word, which may be the cut end of a secret
        first_space = re.search(r"\s", text)
        newline = first_space.start() if first_space else len(text)
    text = text[newline + 1 :]
    return bounded("(earlier lines cut)\n" + text, max_bytes)


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await response.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:limit], size > limit


async def _promql(probe: PromQLProbe, run: _Run) -> str:
    client = run.backends.prometheus
    if client is None:
        raise NotConfiguredError("not configured: no Prometheus (prometheus.url)")
    try:
        expr = fill_promql(probe.query, run.bound)
    except ValueError as error:
        raise ProbeError(str(error)) from None
    result = await client.query(expr)
    if not result.ok:
        raise ProbeError(f"{expr}: {result.error}")
    return f"{expr}: {result.seen}"


async def _http_get(probe: HttpGetProbe, run: _Run) -> str:
    if run.backends.url_allowed is None:
        raise NotConfiguredError("not configured: no allowed URL prefixes")
    fill_plain(probe.url, run.bound)  # every placeholder is bound (ProbeError naming the one that is not)
    try:
        url = fill_url_template(probe.url, run.bound)  # an {instance} host goes in as host:port, checked
    except UrlError as error:
        raise ProbeError(str(error)) from None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or "{" in url or "}" in url:
        raise ProbeError(f"{url} is not an absolute http(s) URL")
    if not run.backends.url_allowed(url):
        raise ProbeError(f"{url} is outside the allowed URL prefixes")
    async with run.backends.http.get().get(
        url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=run.timeout)
    ) as response:
        body, cut = await _read_limited(response, run.max_bytes)
        status = response.status
    text = bounded(f"GET {url} -> HTTP {status}\n{body.decode(errors='replace')}", run.max_bytes, cut)
    if 300 <= status < 400:
        raise ProbeError(f"GET {url} -> HTTP {status} (a redirect; not followed)")
    if not 200 <= status < 300:
        raise ProbeError(text)
    return text


def _container_logs_sync(host: str, container: str, tail: int, timeout: float) -> bytes:
    engine_reachable(host, min(5.0, timeout))
    client = docker.DockerClient(base_url=host, timeout=max(1, math.ceil(timeout)), version=DOCKER_API_VERSION)
    try:
        logs: bytes = client.containers.get(container).logs(stdout=True, stderr=True, tail=tail, timestamps=True)
        return logs
    finally:
        client.close()


async def _container_logs(probe: ContainerLogsProbe, run: _Run) -> str:
    host = run.backends.docker_host
    if host is None:
        raise NotConfiguredError("not configured: no Docker engine (backends.docker_host)")
    container = fill_plain(probe.container, run.bound)
    if not re.fullmatch(CONTAINER_NAME, container):
        raise ProbeError(f"{container[:130]!r} is not a container name")
    try:
        logs = await asyncio.to_thread(_container_logs_sync, host, container, probe.tail, run.timeout)
    except docker.errors.NotFound:
        raise ProbeError(f"container {container} not found") from None
    except (docker.errors.DockerException, TransientActionError) as error:
        raise ProbeError(f"Docker engine: {error}") from None
    return f"{container}, last {probe.tail} lines:\n" + _tail(logs, run.max_bytes)


# Client sessions other than the probe's own; $1 keeps to the DSN's database.
_BY_APPLICATION = """
SELECT coalesce(nullif(application_name, ''), '(none)') AS app, coalesce(state, '?') AS state, count(*) AS n,
       max(extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start ELSE state_change END))::float8
           AS longest
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND (NOT $1 OR datname = current_database())
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50
"""
_LONGEST = """
SELECT pid, coalesce(nullif(application_name, ''), '(none)') AS app, coalesce(usename, '?') AS usename,
       coalesce(datname, '?') AS datname, state,
       extract(epoch FROM now() - CASE WHEN state = 'active' THEN query_start ELSE state_change END)::float8
           AS seconds,
       left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 120) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND (NOT $1 OR datname = current_database())
  AND state = ANY($2::text[])
ORDER BY seconds DESC NULLS LAST LIMIT $3
"""
_IDLE_STATES = ["idle", "idle in transaction", "idle in transaction (aborted)"]


def _session_line(row: asyncpg.Record) -> str:
    return (
        f"  pid {row['pid']} {row['app']} ({row['usename']}@{row['datname']}, {row['state']}) "
        f"{row['seconds'] or 0:.0f}s: {row['query']}"
    )


async def _postgres_sessions(probe: PostgresSessionsProbe, run: _Run) -> str:
    dsn = run.backends.postgres_dsn
    if dsn is None:
        raise NotConfiguredError("not configured: no PostgreSQL (backends.postgres_dsn)")
    try:
        connection = await asyncpg.connect(dsn, timeout=run.timeout, command_timeout=run.timeout)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise ProbeError(f"PostgreSQL: {type(error).__name__}: {error}") from None
    try:
        scope = probe.this_database_only
        groups = await connection.fetch(_BY_APPLICATION, scope)
        running = await connection.fetch(_LONGEST, scope, ["active"], probe.limit)
        idle = await connection.fetch(_LONGEST, scope, _IDLE_STATES, probe.limit)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise ProbeError(f"PostgreSQL: {type(error).__name__}: {error}") from None
    finally:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await connection.close(timeout=min(run.timeout, 2.0))
    lines = ["sessions by application_name (state: count, longest):"]
    lines += [f"  {row['app']} {row['state']}: {row['n']}, longest {row['longest'] or 0:.0f}s" for row in groups]
    lines.append(f"longest-running ({len(running)}):")
    lines += [_session_line(row) for row in running]
    lines.append(f"longest-idle ({len(idle)}):")
    lines += [_session_line(row) for row in idle]
    return bounded("\n".join(lines), run.max_bytes)


def _management_base(api_url: str) -> tuple[str, str | None]:
    """The management API's URL without userinfo, and the Authorization header the userinfo's credentials make."""
    parts = urlsplit(api_url)
    auth = aiohttp.encode_basic_auth(unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


async def _rabbitmq_queue(probe: RabbitQueueProbe, run: _Run) -> str:
    api = run.backends.rabbitmq_api_url
    if api is None:
        raise NotConfiguredError("not configured: no RabbitMQ management API")
    base, auth = _management_base(api)
    if run.backends.rabbitmq_user is not None:
        auth = aiohttp.encode_basic_auth(run.backends.rabbitmq_user, run.backends.rabbitmq_password or "")
    queue = fill_plain(probe.queue, run.bound)
    url = f"{base}/api/queues/{quote(probe.vhost, safe='')}/{quote(queue, safe='')}"
    async with run.backends.http.get().get(
        url,
        headers={"Authorization": auth} if auth else None,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=run.timeout),
    ) as response:
        body, cut = await _read_limited(response, 256 * 1024)
        status = response.status
    if status == 404:
        raise ProbeError(f"queue {queue!r} (vhost {probe.vhost!r}) not found")
    if status != 200 or cut:
        raise ProbeError(f"management API answered HTTP {status}" + (" (too large)" if cut else ""))
    try:
        document = json.loads(body)
    except ValueError:
        raise ProbeError("management API answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise ProbeError("management API answered something that is not a queue")
    return _queue_text(queue, probe.vhost, document)


def _queue_text(queue: str, vhost: str, document: Mapping[str, Any]) -> str:
    head = document.get("head_message_timestamp")
    if isinstance(head, int | float) and head > 0:
        age = f"{max(0.0, time.time() - float(head)):.0f}s"
        oldest = f"oldest message {age} old (published {dt.datetime.fromtimestamp(head, dt.UTC).isoformat()})"
    else:
        oldest = "oldest message age unknown (the head message carries no timestamp)"
    rates = document.get("message_stats") or {}

    def rate(name: str) -> str:
        details = rates.get(f"{name}_details") if isinstance(rates, dict) else None
        value = details.get("rate") if isinstance(details, dict) else None
        return f"{value:g}/s" if isinstance(value, int | float) else "n/a"

    return (
        f"queue {queue} (vhost {vhost}): {document.get('messages', '?')} messages "
        f"({document.get('messages_ready', '?')} ready, {document.get('messages_unacknowledged', '?')} unacked), "
        f"{document.get('consumers', '?')} consumers, consumer utilisation {document.get('consumer_utilisation')}, "
        f"state {document.get('state', '?')}; {oldest}; publish {rate('publish')}, deliver {rate('deliver_get')}, "
        f"ack {rate('ack')}"
    )


async def _redis_info(probe: RedisInfoProbe, run: _Run) -> str:
    url = run.backends.redis_url
    if url is None:
        raise NotConfiguredError("not configured: no Redis (backends.redis_url)")
    client = redis.asyncio.from_url(url, socket_timeout=run.timeout, socket_connect_timeout=run.timeout)
    try:
        memory = await client.info("memory")
        stats = await client.info("stats")
    except (redis.exceptions.RedisError, OSError) as error:
        raise ProbeError(f"Redis: {type(error).__name__}: {error}") from None
    finally:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await client.aclose()
    used, limit = memory.get("used_memory"), memory.get("maxmemory")
    ratio = f"{used / limit:.1%} of maxmemory" if isinstance(used, int) and isinstance(limit, int) and limit else ""
    fields = [f"{key}={memory[key]}" for key in REDIS_MEMORY_FIELDS if key in memory]
    fields += [f"{key}={stats[key]}" for key in REDIS_STATS_FIELDS if key in stats]
    return "memory: " + (f"{ratio}; " if ratio else "") + " ".join(fields)


async def _probe_text(probe: DiagnoseProbe, run: _Run) -> str:
    if isinstance(probe, PromQLProbe):
        return await _promql(probe, run)
    if isinstance(probe, HttpGetProbe):
        return await _http_get(probe, run)
    if isinstance(probe, ContainerLogsProbe):
        return await _container_logs(probe, run)
    if isinstance(probe, PostgresSessionsProbe):
        return await _postgres_sessions(probe, run)
    if isinstance(probe, RabbitQueueProbe):
        return await _rabbitmq_queue(probe, run)
    return await _redis_info(probe, run)


async def _one(probe: DiagnoseProbe, run: _Run) -> Evidence:
    try:
        text = await _probe_text(probe, run)
    except ProbeError as error:
        return Evidence(probe.name, False, bounded(str(error), run.max_bytes))
    except TimeoutError:
        return Evidence(probe.name, False, f"timed out after {run.timeout:.1f}s")
    except (aiohttp.ClientError, OSError, RuntimeError) as error:
        return Evidence(probe.name, False, bounded(f"{type(error).__name__}: {error}", run.max_bytes))
    except Exception as error:  # noqa: BLE001 - evidence is best effort: one probe's bug must not stop the playbook
        return Evidence(probe.name, False, bounded(f"probe failed: {type(error).__name__}: {error}", run.max_bytes))
    return Evidence(probe.name, True, bounded(text, run.max_bytes))


async def gather(
    probes: Sequence[DiagnoseProbe],
    bound: Mapping[str, str],
    backends: EvidenceBackends,
    deadline_seconds: float,
    max_bytes_each: int = 2000,
) -> list[Evidence]:
    """Run every probe at once under one deadline; one Evidence per probe, in order, each text at most
    `max_bytes_each` bytes and scrubbed of secrets. A probe still running at the deadline is cancelled and reported
    "timed out"; one without its backend "not configured". Never raises."""
    run = _Run(bound, backends, deadline_seconds, max_bytes_each)
    tasks = [asyncio.ensure_future(_one(probe, run)) for probe in probes]
    if not tasks:
        return []
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline_seconds)
    finally:
        for task in tasks:
            task.cancel()  # no-op for finished ones; on our own cancellation, none is left behind
    if pending:
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
    evidence: list[Evidence] = []
    for probe, task in zip(probes, tasks, strict=True):
        if task.done() and not task.cancelled():
            evidence.append(task.result())
        else:
            evidence.append(Evidence(probe.name, False, f"timed out after the {deadline_seconds:g}s deadline"))
    return evidence


__all__ = ["Evidence", "EvidenceBackends", "ProbeError", "gather", "scrub"]
