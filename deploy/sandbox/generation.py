"""Strategy generation against a real PostgreSQL `strategies` table (seed 000, Issue 5)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

SCHEMA = """
CREATE TABLE IF NOT EXISTS generation_runs (
    id bigserial PRIMARY KEY,
    requested integer NOT NULL,
    generated integer NOT NULL DEFAULT 0,
    status text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE TABLE IF NOT EXISTS strategies (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'backtesting',
    performance_score double precision,
    generation_run_id bigint REFERENCES generation_runs(id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS strategies_created_at_idx ON strategies (created_at);
"""

ACTIVE_STRATEGIES = 5  # seed 000 Evening Checklist 2: MAX_ACTIVE_STRATEGIES, default 2-10


@dataclass(frozen=True)
class GenerationStatus:
    """What GET /api/strategies/generation/status reports."""

    last_generation: dt.datetime | None
    last_count: int
    status: str


async def ensure_schema(pool: asyncpg.Pool) -> None:
    """Create the strategies and generation_runs tables when missing."""
    async with pool.acquire() as connection:
        await connection.execute(SCHEMA)


async def generate(pool: asyncpg.Pool, count: int, at: dt.datetime | None = None) -> int:
    """Insert one completed generation run of `count` strategies (created at `at`, default now); return its id."""
    created = at or dt.datetime.now(dt.UTC)
    async with pool.acquire() as connection, connection.transaction():
        run_id: int = await connection.fetchval(
            "INSERT INTO generation_runs (requested, generated, status, started_at, completed_at) "
            "VALUES ($1, $1, 'completed', $2, $2) RETURNING id",
            count,
            created,
        )
        await connection.execute(
            "INSERT INTO strategies (name, status, performance_score, generation_run_id, created_at) "
            "SELECT 'strategy_' || $1::bigint || '_' || n, "
            "CASE WHEN n <= $3 THEN 'active' ELSE 'backtesting' END, random(), $1, $2 "
            "FROM generate_series(1, $4::int) AS n",
            run_id,
            created,
            ACTIVE_STRATEGIES,
            count,
        )
        # Only the newest run's best strategies are live.
        await connection.execute(
            "UPDATE strategies SET status = 'retired' WHERE status = 'active' AND generation_run_id <> $1",
            run_id,
        )
    return run_id


async def stall(pool: asyncpg.Pool, age: dt.timedelta) -> None:
    """Make generation look stalled: every strategy and run is moved `age` into the past."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "UPDATE strategies SET created_at = created_at - $1::interval WHERE created_at > now() - $1::interval",
            age,
        )
        await connection.execute(
            "UPDATE generation_runs SET started_at = started_at - $1::interval, "
            "completed_at = completed_at - $1::interval WHERE started_at > now() - $1::interval",
            age,
        )


async def status(pool: asyncpg.Pool, stalled_after: dt.timedelta) -> GenerationStatus:
    """Report the newest generation run and whether generation is stalled (no run within stalled_after)."""
    async with pool.acquire() as connection:
        row = await connection.fetchrow(
            "SELECT completed_at, generated FROM generation_runs ORDER BY completed_at DESC NULLS LAST LIMIT 1"
        )
    if row is None or row["completed_at"] is None:
        return GenerationStatus(None, 0, "never_run")
    last: dt.datetime = row["completed_at"]
    stalled = dt.datetime.now(dt.UTC) - last > stalled_after
    return GenerationStatus(last, row["generated"], "stalled" if stalled else "completed")


async def active_count(pool: asyncpg.Pool) -> int:
    """Count strategies whose status is active."""
    async with pool.acquire() as connection:
        count: int = await connection.fetchval("SELECT count(*) FROM strategies WHERE status = 'active'")
    return count
