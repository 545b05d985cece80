"""Probes over PostgreSQL: server connections, strategy generation and generic SQL-to-gauge queries."""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

import asyncpg

from common.postgres import keep_session
from exporter.config import DsnConfig, PostgresConfig, SqlConfig, StrategyGenerationConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink


def quote_identifier(name: str) -> str:
    """Quote an already validated identifier (optionally schema.name) for SQL."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


class PoolProbe(Probe):
    """A probe holding one small asyncpg pool across scrapes, created without connecting."""

    # The typed probes' own queries set no session state, so a connection needs no reset query on its way back to
    # the pool; an operator's SQL (SqlProbe) might, and gets asyncpg's reset.
    sets_session_state: ClassVar[bool] = False

    def __init__(self, config: DsnConfig) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.dsn = config.resolved_dsn()
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        """Return the pool; it connects lazily, so a down server fails the scrape, not the start."""
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=2,
                    timeout=self.timeout_seconds,
                    command_timeout=self.timeout_seconds,
                    # Every statement runs in a read-only transaction, without a BEGIN and COMMIT round trip each.
                    server_settings={"application_name": "tradeops-exporter", "default_transaction_read_only": "on"},
                    reset=None if self.sets_session_state else keep_session,
                )
            return self._pool

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """Run a query read-only and return its rows; PostgreSQL errors become ProbeError."""
        pool = await self.pool()
        try:
            async with pool.acquire(timeout=self.timeout_seconds) as connection:
                return list(await connection.fetch(query, *args))
        except asyncpg.PostgresError as error:
            raise ProbeError("query", f"{type(error).__name__}: {error}") from error

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


CONNECTIONS_QUERY = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1
"""
SERVER_QUERY = """
SELECT current_setting('max_connections')::int AS max_connections,
       coalesce(extract(epoch FROM max(now() - query_start)
           FILTER (WHERE state = 'active' AND pid <> pg_backend_pid())), 0) AS longest_query,
       coalesce(extract(epoch FROM max(now() - xact_start)
           FILTER (WHERE state IN ('idle in transaction', 'idle in transaction (aborted)'))), 0) AS longest_idle_tx
FROM pg_stat_activity WHERE backend_type = 'client backend'
"""
# Seed 002, Database Lock Issues: `SELECT * FROM pg_locks WHERE NOT granted`; a blocked session is one waiting for a
# lock another holds (pg_blocking_pids). Seed 000 Issue 2 and seed 002: active queries older than a threshold.
LOCKS_QUERY = """
SELECT (SELECT count(*) FROM pg_locks WHERE NOT granted) AS waiting_locks,
       (SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0) AS blocked,
       (SELECT array_agg(n ORDER BY o) FROM (
            SELECT t.o, count(a.pid) AS n
            FROM unnest($1::float8[]) WITH ORDINALITY AS t(seconds, o)
            LEFT JOIN pg_stat_activity a
              ON a.backend_type = 'client backend' AND a.state = 'active' AND a.pid <> pg_backend_pid()
             AND a.query_start < now() - make_interval(secs => t.seconds)
            GROUP BY t.o) AS counted) AS slow
"""
CONNECTION_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call")


class PostgresProbe(PoolProbe):
    """Connections by state against max_connections, database sizes, longest query and idle transaction."""

    kind = "postgres"

    def __init__(self, config: PostgresConfig) -> None:
        super().__init__(config)
        self.databases = config.databases
        self.slow_query_seconds = list(config.slow_query_seconds)

    async def collect(self, sink: MetricSink) -> None:
        labels = {"server": self.target}
        states = {row["state"]: row["n"] for row in await self.fetch(CONNECTIONS_QUERY)}
        for state in sorted(set(CONNECTION_STATES) | set(states)):
            sink.gauge(
                "tradeops_postgres_connections",
                "Client connections by state (pg_stat_activity).",
                {**labels, "state": state.replace(" ", "_").replace("(", "").replace(")", "")},
                states.get(state, 0),
            )
        server = (await self.fetch(SERVER_QUERY))[0]
        sink.gauge(
            "tradeops_postgres_max_connections", "The server's max_connections.", labels, server["max_connections"]
        )
        sink.gauge(
            "tradeops_postgres_longest_query_seconds",
            "Age of the longest running active query (0 when none).",
            labels,
            float(server["longest_query"]),
        )
        sink.gauge(
            "tradeops_postgres_longest_idle_in_transaction_seconds",
            "Age of the oldest transaction left idle (0 when none).",
            labels,
            float(server["longest_idle_tx"]),
        )
        await self._locks_and_slow_queries(sink, labels)
        if self.databases:
            rows = await self.fetch(
                "SELECT datname, pg_database_size(datname) AS size FROM pg_database WHERE datname = any($1::text[])",
                list(self.databases),
            )
            for row in rows:
                sink.gauge(
                    "tradeops_postgres_database_size_bytes",
                    "Size of the database on disk.",
                    {**labels, "database": row["datname"]},
                    row["size"],
                )

    async def _locks_and_slow_queries(self, sink: MetricSink, labels: dict[str, str]) -> None:
        row = (await self.fetch(LOCKS_QUERY, self.slow_query_seconds))[0]
        sink.gauge(
            "tradeops_postgres_locks_waiting",
            "Locks requested and not granted (pg_locks).",
            labels,
            row["waiting_locks"],
        )
        sink.gauge(
            "tradeops_postgres_blocked_sessions",
            "Sessions waiting for a lock another session holds (pg_blocking_pids).",
            labels,
            row["blocked"],
        )
        for seconds, count in zip(self.slow_query_seconds, row["slow"] or [], strict=True):
            sink.gauge(
                "tradeops_postgres_slow_queries",
                "Active queries running for longer than threshold_seconds.",
                {**labels, "threshold_seconds": f"{seconds:g}"},
                count,
            )


class StrategyGenerationProbe(PoolProbe):
    """Strategies created in a trailing window, last generation time, last run size, active strategies."""

    kind = "strategy_generation"

    def __init__(self, config: StrategyGenerationConfig) -> None:
        super().__init__(config)
        self.config = config
        table = quote_identifier(config.table)
        created = quote_identifier(config.created_at_column)
        self.window_query = (
            f"SELECT count(*) FILTER (WHERE {created} > now() - make_interval(secs => $1)) AS recent, "  # noqa: S608
            f"extract(epoch FROM max({created})) AS last FROM {table}"
        )
        self.active_query = (
            f"SELECT count(*) FROM {table} WHERE {quote_identifier(config.status_column)} = $1"  # noqa: S608
            if config.status_column
            else None
        )
        runs = config.runs
        self.runs_query = (
            f"SELECT {quote_identifier(runs.count_column)} AS n FROM {quote_identifier(runs.table)} "  # noqa: S608
            f"WHERE {quote_identifier(runs.completed_at_column)} IS NOT NULL "
            f"ORDER BY {quote_identifier(runs.completed_at_column)} DESC LIMIT 1"
            if runs
            else None
        )

    async def collect(self, sink: MetricSink) -> None:
        labels = {"system": self.target}
        window = self.config.window_hours * 3600
        row = (await self.fetch(self.window_query, window))[0]
        sink.gauge(
            "tradeops_strategies_created_in_window",
            "Strategies created within the trailing window (window_seconds label).",
            {**labels, "window_seconds": str(int(window))},
            row["recent"],
        )
        if row["last"] is not None:
            sink.gauge(
                "tradeops_strategy_last_generation_timestamp_seconds",
                "When the newest strategy was created.",
                labels,
                float(row["last"]),
            )
        if self.active_query is not None:
            active = (await self.fetch(self.active_query, self.config.active_value))[0][0]
            sink.gauge("tradeops_strategies_active", "Strategies whose status is active.", labels, active)
        if self.runs_query is not None:
            rows = await self.fetch(self.runs_query)
            if rows:
                sink.gauge(
                    "tradeops_strategy_last_run_strategies",
                    "Strategies produced by the last completed generation run.",
                    labels,
                    float(rows[0]["n"] or 0),
                )


class SqlProbe(PoolProbe):
    """A configured read-only query whose rows become gauges."""

    kind = "sql"
    sets_session_state = True

    def __init__(self, config: SqlConfig) -> None:
        super().__init__(config)
        self.config = config

    async def collect(self, sink: MetricSink) -> None:
        rows = await self.fetch(self.config.query)
        series = 0
        for row in rows:
            for metric in self.config.metrics:
                if series >= self.config.max_series:
                    sink.dropped_series += 1
                    continue
                value = _number(row, metric.value_column)
                labels = {"query": self.target}
                labels.update({column: _text(row, column) for column in metric.label_columns})
                sink.gauge(metric.name, metric.help, labels, value)
                series += 1


def _number(row: asyncpg.Record, column: str) -> float:
    if column not in row:
        raise ProbeError("bad_result", f"query result has no column {column!r}")
    value = row[column]
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise ProbeError("bad_result", f"column {column!r} is not numeric: {value!r}") from error


def _text(row: asyncpg.Record, column: str) -> str:
    if column not in row:
        raise ProbeError("bad_result", f"query result has no column {column!r}")
    return "" if row[column] is None else str(row[column])[:256]
