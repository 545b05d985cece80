"""postgres_terminate and postgres_cancel_queries (seed 000 Playbook 1 and Issue 2; seed 003 Incident 4)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Literal

import asyncpg
from pydantic import Field

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.-]+$")]

TERMINATE_IDLE = """
SELECT pid, pg_terminate_backend(pid) AS done FROM (
    SELECT pid FROM pg_stat_activity
    WHERE datname = $1 AND application_name = any($2::text[]) AND state = any($3::text[])
      AND state_change < now() - make_interval(secs => $4) AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
    ORDER BY state_change LIMIT $5) victims
"""
LONG_QUERIES = """
SELECT pid FROM pg_stat_activity
WHERE datname = $1 AND state = 'active' AND query_start < now() - make_interval(secs => $2)
  AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND (cardinality($3::text[]) = 0 OR application_name = any($3::text[]))
ORDER BY query_start LIMIT $4
"""


class PostgresAction(Action):
    """Shared connection handling: one short-lived connection per run, as the remediator's own session."""

    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn

    async def connect(self, database: str) -> asyncpg.Connection:
        """Connect to one database on the configured server."""
        if self.dsn is None:
            raise PermanentActionError("no PostgreSQL configured (backends.postgres_dsn)")
        try:
            return await asyncpg.connect(
                self.dsn, database=database, timeout=10, server_settings={"application_name": "tradeops-remediator"}
            )
        except asyncpg.InvalidCatalogNameError as error:
            raise PermanentActionError(f"database {database} does not exist") from error
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            raise TransientActionError(f"PostgreSQL: {error!r}") from error


class PostgresTerminateParams(ActionParams):
    database: Name
    application_names: Annotated[tuple[Name, ...], Field(min_length=1)]
    states: tuple[Literal["idle", "idle in transaction", "idle in transaction (aborted)"], ...] = ("idle",)
    idle_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 10.0
    max_sessions: Annotated[int, Field(ge=1, le=1000)] = 50


class PostgresTerminateAction(PostgresAction):
    """Terminates idle sessions older than idle_minutes of the allowed applications, at most max_sessions,
    never the remediator's own session; parameterised SQL only."""

    name = "postgres_terminate"
    params_model = PostgresTerminateParams

    async def run(self, params: PostgresTerminateParams, bound: Mapping[str, str]) -> ActionResult:
        connection = await self.connect(params.database)
        try:
            rows = await connection.fetch(
                TERMINATE_IDLE,
                params.database,
                list(params.application_names),
                list(params.states),
                params.idle_minutes * 60,
                params.max_sessions,
            )
        except asyncpg.PostgresError as error:
            raise TransientActionError(f"PostgreSQL: {error}") from error
        finally:
            await connection.close()
        done = [row["pid"] for row in rows if row["done"]]
        return ActionResult(f"terminated {len(done)} session(s) in {params.database}: {done}", changed=bool(done))


class PostgresCancelParams(ActionParams):
    database: Name
    older_than_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] = 300.0
    application_names: tuple[Name, ...] = ()
    terminate_after_seconds: Annotated[float, Field(gt=0, le=600)] | None = None
    max_sessions: Annotated[int, Field(ge=1, le=1000)] = 10


class PostgresCancelQueriesAction(PostgresAction):
    """Cancels active queries running longer than older_than_seconds; with terminate_after_seconds, terminates
    those still running after that grace."""

    name = "postgres_cancel_queries"
    params_model = PostgresCancelParams

    async def run(self, params: PostgresCancelParams, bound: Mapping[str, str]) -> ActionResult:
        connection = await self.connect(params.database)
        try:
            args = (params.database, params.older_than_seconds, list(params.application_names), params.max_sessions)
            pids = [row["pid"] for row in await connection.fetch(LONG_QUERIES, *args)]
            for pid in pids:
                await connection.execute("SELECT pg_cancel_backend($1)", pid)
            terminated: list[int] = []
            if pids and params.terminate_after_seconds is not None:
                await asyncio.sleep(params.terminate_after_seconds)
                still = {row["pid"] for row in await connection.fetch(LONG_QUERIES, *args)}
                for pid in [p for p in pids if p in still]:
                    await connection.execute("SELECT pg_terminate_backend($1)", pid)
                    terminated.append(pid)
        except asyncpg.PostgresError as error:
            raise TransientActionError(f"PostgreSQL: {error}") from error
        finally:
            await connection.close()
        return ActionResult(f"cancelled {pids}, terminated {terminated} in {params.database}", changed=bool(pids))
