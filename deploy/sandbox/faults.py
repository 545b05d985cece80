"""The chaos faults: each is injected into, observed on and cleared from a real component."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel
from pydantic import BaseModel, ConfigDict, Field

from sandbox import backups, consumers, containers, generation, pm2_services, standins
from sandbox.context import FILL_KEY_PREFIX, SandboxContext
from sandbox.platform import CollectorStatus

STALLED_AFTER = dt.timedelta(hours=27)  # seed 000: generation at 03:00 UTC, complete within 3 h, daily
BACKUP_MAX_AGE = dt.timedelta(hours=24)  # seed 000 Daily Operations 6: "backups should exist from last night"


class FaultError(Exception):
    """A fault cannot be injected as asked; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FaultParams(BaseModel):
    """Base of every fault's parameters: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def target(self) -> str:
        """Return what the fault acts on, so that one fault per target is tracked."""
        return "-"


class Fault(ABC):
    """One kind of fault: how to inject it, whether it is still active, and how to clear it."""

    name: ClassVar[str]
    params_model: ClassVar[type[FaultParams]]
    description: ClassVar[str]

    @abstractmethod
    async def inject(self, ctx: SandboxContext, params: Any) -> dict[str, Any]:
        """Inject the fault into the real component; return facts worth reporting."""

    @abstractmethod
    async def active(self, ctx: SandboxContext, params: Any) -> bool:
        """Read the real component and say whether the fault is still there."""

    @abstractmethod
    async def clear(self, ctx: SandboxContext, params: Any) -> None:
        """Undo the fault on the real component."""


def _known(value: str, allowed: Mapping[str, object] | tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise FaultError(422, f"unknown {what} {value!r}; known: {', '.join(sorted(allowed))}")


class ServiceParams(FaultParams):
    service: str

    def target(self) -> str:
        return self.service


class ServiceDown(Fault):
    name = "service_down"
    params_model = ServiceParams
    description = "the service stops answering (its container is stopped when it has one)"

    async def inject(self, ctx: SandboxContext, params: ServiceParams) -> dict[str, Any]:
        _known(params.service, ctx.state.services, "service")
        container = ctx.containers.get(params.service)
        if container is not None:
            await containers.stop(ctx.backends.docker(), container)
        else:
            ctx.state.services[params.service].listening = False
        return {"container": container}

    async def active(self, ctx: SandboxContext, params: ServiceParams) -> bool:
        container = ctx.containers.get(params.service)
        if container is not None:
            return not await containers.is_running(ctx.backends.docker(), container)
        return not ctx.state.services[params.service].listening

    async def clear(self, ctx: SandboxContext, params: ServiceParams) -> None:
        container = ctx.containers.get(params.service)
        if container is not None:
            await containers.start(ctx.backends.docker(), container)
        ctx.state.services[params.service].listening = True


class ContainerDown(ServiceDown):
    name = "container_down"
    description = "the real container linked to the service is stopped"

    async def inject(self, ctx: SandboxContext, params: ServiceParams) -> dict[str, Any]:
        _known(params.service, ctx.state.services, "service")
        if params.service not in ctx.containers:
            raise FaultError(409, f"service {params.service!r} has no container (start with --container)")
        return await super().inject(ctx, params)


class ServiceUnhealthy(Fault):
    name = "service_unhealthy"
    params_model = ServiceParams
    description = "the service answers /health with 503 and status unhealthy"

    async def inject(self, ctx: SandboxContext, params: ServiceParams) -> dict[str, Any]:
        _known(params.service, ctx.state.services, "service")
        ctx.state.services[params.service].healthy = False
        return {}

    async def active(self, ctx: SandboxContext, params: ServiceParams) -> bool:
        return not ctx.state.services[params.service].healthy

    async def clear(self, ctx: SandboxContext, params: ServiceParams) -> None:
        ctx.state.services[params.service].healthy = True


class SlowParams(ServiceParams):
    delay_seconds: Annotated[float, Field(gt=0, le=30)] = 0.5


class SlowApi(Fault):
    name = "slow_api"
    params_model = SlowParams
    description = "every answer of the service is delayed (drives its p95 latency up)"

    async def inject(self, ctx: SandboxContext, params: SlowParams) -> dict[str, Any]:
        _known(params.service, ctx.state.services, "service")
        ctx.state.services[params.service].delay_seconds = params.delay_seconds
        return {}

    async def active(self, ctx: SandboxContext, params: SlowParams) -> bool:
        return ctx.state.services[params.service].delay_seconds > 0

    async def clear(self, ctx: SandboxContext, params: SlowParams) -> None:
        ctx.state.services[params.service].delay_seconds = 0.0


class CollectorParams(FaultParams):
    collector: str

    def target(self) -> str:
        return self.collector


class CollectorDegraded(Fault):
    name = "collector_degraded"
    params_model = CollectorParams
    description = "the collector reports degraded"
    status = CollectorStatus.DEGRADED
    breaker_open = False

    async def inject(self, ctx: SandboxContext, params: CollectorParams) -> dict[str, Any]:
        _known(params.collector, ctx.state.collectors, "collector")
        collector = ctx.state.collectors[params.collector]
        collector.status = self.status
        collector.circuit_breaker_open = self.breaker_open
        collector.error_count += 1
        return {}

    async def active(self, ctx: SandboxContext, params: CollectorParams) -> bool:
        return ctx.state.collectors[params.collector].status is self.status

    async def clear(self, ctx: SandboxContext, params: CollectorParams) -> None:
        ctx.state.reset_collector(params.collector)


class CollectorFailed(CollectorDegraded):
    name = "collector_failed"
    description = "the collector fails and its circuit breaker opens (cleared by its reset endpoint)"
    status = CollectorStatus.FAILED
    breaker_open = True


class StallParams(FaultParams):
    age_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 30.0


class GenerationStalled(Fault):
    name = "generation_stalled"
    params_model = StallParams
    description = "no strategy was generated in the last day (rows moved into the past in PostgreSQL)"

    async def inject(self, ctx: SandboxContext, params: StallParams) -> dict[str, Any]:
        await generation.stall(await ctx.postgres(), dt.timedelta(hours=params.age_hours))
        return {}

    async def active(self, ctx: SandboxContext, params: StallParams) -> bool:
        status = await generation.status(await ctx.postgres(), STALLED_AFTER)
        return status.status in {"stalled", "never_run"}

    async def clear(self, ctx: SandboxContext, params: StallParams) -> None:
        await generation.generate(await ctx.postgres(), ctx.profile.generation_target)


class QueueParams(FaultParams):
    queue: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        "strategy_service.signals"
    )
    messages: Annotated[int, Field(ge=1, le=200_000)] = 1500
    # False: a poison message; the consumer hangs again on it after a restart, and the queue never drains.
    consumer_revives: bool = True

    def target(self) -> str:
        return self.queue


class QueueBuildup(Fault):
    name = "queue_buildup"
    params_model = QueueParams
    description = (
        "the queue's consumer hangs and messages are published into the real RabbitMQ queue; restarting the"
        " consumer's container (when the sandbox runs one) revives it and it drains the queue, unless"
        " consumer_revives is false (a poison message hangs it again)"
    )

    async def inject(self, ctx: SandboxContext, params: QueueParams) -> dict[str, Any]:
        if params.consumer_revives:
            await consumers.hang(ctx, params.queue)
        channel = await declare_or_reuse(ctx, params.queue)
        try:
            queue = await channel.get_queue(params.queue, ensure=False)
            body = b'{"signal":"sandbox","symbol":"BTCUSDT"}'
            for start in range(0, params.messages, 500):
                batch = min(500, params.messages - start)
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
                        for _ in range(batch)
                    )
                )
        finally:
            await channel.close()
        return {"published": params.messages}

    async def active(self, ctx: SandboxContext, params: QueueParams) -> bool:
        return await queue_depth(ctx, params.queue) > 0

    async def clear(self, ctx: SandboxContext, params: QueueParams) -> None:
        ctx.state.hung_consumers.pop(params.queue, None)
        channel = await ctx.channel()
        try:
            queue = await channel.declare_queue(params.queue, passive=True)
            await queue.purge()
        except aio_pika.exceptions.ChannelClosed:
            return
        finally:
            if not channel.is_closed:
                await channel.close()


async def declare_or_reuse(ctx: SandboxContext, name: str) -> AbstractChannel:
    """Return a channel on which the queue exists: an existing queue is reused whatever its flags."""
    channel = await ctx.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        channel = await ctx.channel()
        await channel.declare_queue(name, durable=True)
    return channel


async def queue_depth(ctx: SandboxContext, name: str) -> int:
    """Return a real queue's ready message count (0 when it does not exist)."""
    channel = await ctx.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return 0
    try:
        return int(queue.declaration_result.message_count or 0)
    finally:
        await channel.close()


class IdleParams(FaultParams):
    count: Annotated[int, Field(ge=1, le=200)] = 10
    state: Literal["idle", "idle in transaction"] = "idle"
    application_name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "mastertrade_strategy"
    )

    def target(self) -> str:
        return self.application_name


class PgIdleConnections(Fault):
    name = "pg_idle_connections"
    params_model = IdleParams
    description = "real PostgreSQL sessions are opened and left idle, as a leaking pool does"

    async def inject(self, ctx: SandboxContext, params: IdleParams) -> dict[str, Any]:
        pool = await ctx.postgres()
        dsn = ctx.backends.postgres_dsn
        for _ in range(params.count):
            try:
                connection = await asyncpg.connect(
                    dsn, timeout=5, server_settings={"application_name": params.application_name}
                )
            except asyncpg.TooManyConnectionsError:
                break
            if params.state == "idle in transaction":
                await connection.execute("BEGIN; SELECT 1")
            ctx.held.connections.append(connection)
        del pool
        return {"held": len(ctx.held.connections), "pids": ctx.held.pids}

    async def active(self, ctx: SandboxContext, params: IdleParams) -> bool:
        if not ctx.held.connections:
            return False
        pool = await ctx.postgres()
        alive: int = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = any($1::int[])", ctx.held.pids
        )
        if alive == 0:
            await ctx.held.close()
        return alive > 0

    async def clear(self, ctx: SandboxContext, params: IdleParams) -> None:
        await ctx.held.close()


class BackupParams(FaultParams):
    set: Literal["postgres_daily", "postgres_incremental", "redis", "postgres_full"] = "postgres_daily"
    age_hours: Annotated[float, Field(gt=24, le=24 * 365)] = 48.0

    def target(self) -> str:
        return self.set


class BackupStale(Fault):
    name = "backup_stale"
    params_model = BackupParams
    description = "the newest backup file of the set is older than a day"

    async def inject(self, ctx: SandboxContext, params: BackupParams) -> dict[str, Any]:
        if not backups.backup_files(ctx.backup_root, params.set):
            backups.write_backup(ctx.backup_root, params.set)
        aged = backups.age_backups(ctx.backup_root, params.set, dt.timedelta(hours=params.age_hours))
        return {"aged_files": aged}

    async def active(self, ctx: SandboxContext, params: BackupParams) -> bool:
        age = backups.newest_age_seconds(ctx.backup_root, params.set)
        return age is None or age > BACKUP_MAX_AGE.total_seconds()

    async def clear(self, ctx: SandboxContext, params: BackupParams) -> None:
        backups.write_backup(ctx.backup_root, params.set)


class BackupSetParams(FaultParams):
    set: Literal["postgres_daily", "postgres_incremental", "redis", "postgres_full"] = "postgres_daily"

    def target(self) -> str:
        return self.set


class BackupMissing(Fault):
    name = "backup_missing"
    params_model = BackupSetParams
    description = "every file of the backup set is deleted"

    async def inject(self, ctx: SandboxContext, params: BackupSetParams) -> dict[str, Any]:
        return {"removed_files": backups.remove_backups(ctx.backup_root, params.set)}

    async def active(self, ctx: SandboxContext, params: BackupSetParams) -> bool:
        return not backups.backup_files(ctx.backup_root, params.set)

    async def clear(self, ctx: SandboxContext, params: BackupSetParams) -> None:
        backups.write_backup(ctx.backup_root, params.set)


class BackupCorrupt(Fault):
    name = "backup_corrupt"
    params_model = BackupSetParams
    description = "the newest backup file of the set is truncated (fails its integrity check)"

    async def inject(self, ctx: SandboxContext, params: BackupSetParams) -> dict[str, Any]:
        path = backups.write_backup(ctx.backup_root, params.set, dt.datetime.now(dt.UTC))
        content = path.read_bytes()
        path.write_bytes(content[: max(1, len(content) // 2)] if path.suffix == ".gz" else b"NOTREDIS")
        return {"file": str(path)}

    async def active(self, ctx: SandboxContext, params: BackupSetParams) -> bool:
        files = backups.backup_files(ctx.backup_root, params.set)
        return bool(files) and not _intact(files[0].read_bytes(), files[0].name)

    async def clear(self, ctx: SandboxContext, params: BackupSetParams) -> None:
        for path in backups.backup_files(ctx.backup_root, params.set):
            if not _intact(path.read_bytes(), path.name):
                path.unlink()
        backups.write_backup(ctx.backup_root, params.set)


def _intact(content: bytes, name: str) -> bool:
    if name.endswith(".gz"):
        try:
            gzip.decompress(content)
        except (OSError, EOFError):
            return False
        return True
    return content.startswith(b"REDIS")


class RedisFillParams(FaultParams):
    keys: Annotated[int, Field(ge=1, le=1_000_000)] = 2000
    value_bytes: Annotated[int, Field(ge=1, le=1_048_576)] = 4096
    target_ratio: Annotated[float, Field(gt=0, le=1)] | None = 0.95


class RedisFill(Fault):
    name = "redis_fill"
    params_model = RedisFillParams
    description = (
        f"real keys {FILL_KEY_PREFIX}* are written until used memory reaches target_ratio of maxmemory "
        "(or `keys` keys when maxmemory is 0)"
    )
    max_total_bytes = 512 * 1024 * 1024

    async def inject(self, ctx: SandboxContext, params: RedisFillParams) -> dict[str, Any]:
        client = await ctx.backends.redis()
        info = await client.info("memory")
        maxmemory = int(info.get("maxmemory", 0))
        value = b"x" * params.value_bytes
        written = 0
        batch = 200
        while written * params.value_bytes < self.max_total_bytes:
            if maxmemory and params.target_ratio is not None:
                used = int((await client.info("memory"))["used_memory"])
                if used >= maxmemory * params.target_ratio:
                    break
            elif written >= params.keys:
                break
            pipe = client.pipeline(transaction=False)
            for index in range(written, written + batch):
                pipe.set(f"{FILL_KEY_PREFIX}{index}", value)
            try:
                await pipe.execute()
            except Exception as error:
                if "OOM" in str(error):
                    break
                raise
            written += batch
        return {"keys_written": written, "maxmemory": maxmemory}

    async def active(self, ctx: SandboxContext, params: RedisFillParams) -> bool:
        client = await ctx.backends.redis()
        async for _ in client.scan_iter(match=f"{FILL_KEY_PREFIX}*", count=1000):
            return True
        return False

    async def clear(self, ctx: SandboxContext, params: RedisFillParams) -> None:
        client = await ctx.backends.redis()
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{FILL_KEY_PREFIX}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)


class NoParams(FaultParams):
    pass


class AlertDeliveryFailing(Fault):
    name = "alert_delivery_failing"
    params_model = NoParams
    description = "the alert system fails to deliver most notifications (seed 000, Issue 6)"

    async def inject(self, ctx: SandboxContext, params: NoParams) -> dict[str, Any]:
        ctx.state.alert_delivery_failing = True
        return {}

    async def active(self, ctx: SandboxContext, params: NoParams) -> bool:
        return ctx.state.alert_delivery_failing

    async def clear(self, ctx: SandboxContext, params: NoParams) -> None:
        ctx.state.alert_delivery_failing = False


class BreakerParams(FaultParams):
    name: str = "brokerService"
    # resilience4j's waitDurationInOpenState: the breaker half-opens by itself after this long (never if unset)
    half_open_after_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None

    def target(self) -> str:
        return self.name


class CircuitBreakerOpenFault(Fault):
    name = "circuit_breaker_open"
    params_model = BreakerParams
    description = "a resilience4j circuit breaker of a Spring service opens (its calls fail fast)"

    async def inject(self, ctx: SandboxContext, params: BreakerParams) -> dict[str, Any]:
        _known(params.name, ctx.state.circuit_breakers, "circuit breaker")
        ctx.state.circuit_breakers[params.name] = "open"
        if params.half_open_after_seconds is not None:
            ctx.state.half_open_at[params.name] = time.monotonic() + params.half_open_after_seconds
        return {}

    async def active(self, ctx: SandboxContext, params: BreakerParams) -> bool:
        return ctx.state.circuit_breakers.get(params.name) in {"open", "forced_open"}

    async def clear(self, ctx: SandboxContext, params: BreakerParams) -> None:
        ctx.state.half_open_at.pop(params.name, None)
        ctx.state.circuit_breakers[params.name] = "closed"


class ErrorRateParams(FaultParams):
    ratio: Annotated[float, Field(gt=0, le=1)] = 0.2


class ErrorRate(Fault):
    name = "error_rate"
    params_model = ErrorRateParams
    description = "a share of the service's order requests answer 500"

    async def inject(self, ctx: SandboxContext, params: ErrorRateParams) -> dict[str, Any]:
        ctx.state.error_ratio = params.ratio
        return {}

    async def active(self, ctx: SandboxContext, params: ErrorRateParams) -> bool:
        return ctx.state.error_ratio > 0

    async def clear(self, ctx: SandboxContext, params: ErrorRateParams) -> None:
        ctx.state.error_ratio = 0.0


class LongQueryParams(FaultParams):
    count: Annotated[int, Field(ge=1, le=100)] = 10
    seconds: Annotated[int, Field(ge=1, le=3600)] = 600


class PgLongQueries(Fault):
    name = "pg_long_queries"
    params_model = LongQueryParams
    description = "the service's sessions run real queries that do not finish (pg_sleep), filling its pool"

    async def inject(self, ctx: SandboxContext, params: LongQueryParams) -> dict[str, Any]:
        dsn = ctx.backends.postgres_dsn
        ctx.queries.dsn = dsn
        for _ in range(params.count):
            try:
                connection = await asyncpg.connect(
                    dsn, timeout=5, server_settings={"application_name": ctx.profile.application_name}
                )
            except asyncpg.TooManyConnectionsError:
                break
            ctx.queries.connections.append(connection)
            ctx.queries.tasks.append(asyncio.create_task(_sleep_query(connection, params.seconds)))
        return {"running": len(ctx.queries.tasks)}

    async def active(self, ctx: SandboxContext, params: LongQueryParams) -> bool:
        return ctx.queries.running() > 0

    async def clear(self, ctx: SandboxContext, params: LongQueryParams) -> None:
        await ctx.queries.close()


async def _sleep_query(connection: asyncpg.Connection, seconds: int) -> None:
    """Run one query that takes `seconds`; a cancel or terminate from outside ends it early."""
    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        await connection.execute("SELECT pg_sleep($1)", float(seconds))


class RateGateExhausted(Fault):
    name = "rate_gate_exhausted"
    params_model = NoParams
    description = "the rate gate backs off every second (market data API quota exhausted) until reset"

    async def inject(self, ctx: SandboxContext, params: NoParams) -> dict[str, Any]:
        ctx.state.rate_gate_exhausted = True
        return {}

    async def active(self, ctx: SandboxContext, params: NoParams) -> bool:
        return ctx.state.rate_gate_exhausted

    async def clear(self, ctx: SandboxContext, params: NoParams) -> None:
        ctx.state.rate_gate_exhausted = False


class LosingStrategy(Fault):
    name = "losing_strategy"
    params_model = NoParams
    description = "the strategy loses: Sharpe below 0 and drawdown 8 % while auto-trading stays on"

    async def inject(self, ctx: SandboxContext, params: NoParams) -> dict[str, Any]:
        ctx.state.losing = True
        ctx.state.auto_trading = True
        return {}

    async def active(self, ctx: SandboxContext, params: NoParams) -> bool:
        return ctx.state.losing and ctx.state.auto_trading

    async def clear(self, ctx: SandboxContext, params: NoParams) -> None:
        ctx.state.losing = False
        ctx.state.auto_trading = True


class ProcessParams(FaultParams):
    process: str = "trading-engine"

    def target(self) -> str:
        return self.process


class Pm2CrashLoop(Fault):
    name = "pm2_crash_loop"
    params_model = ProcessParams
    description = "a PM2 process crashes and is restarted by PM2 every second"

    async def inject(self, ctx: SandboxContext, params: ProcessParams) -> dict[str, Any]:
        _known(params.process, ctx.state.pm2_restarts, "PM2 process")
        ctx.state.crash_looping.add(params.process)
        return {}

    async def active(self, ctx: SandboxContext, params: ProcessParams) -> bool:
        return params.process in ctx.state.crash_looping

    async def clear(self, ctx: SandboxContext, params: ProcessParams) -> None:
        ctx.state.crash_looping.discard(params.process)


class Pm2MemoryLeak(Fault):
    name = "pm2_memory_leak"
    params_model = ProcessParams
    description = "a PM2 process's memory grows by 1 % of the host's every second until that process is restarted"

    async def inject(self, ctx: SandboxContext, params: ProcessParams) -> dict[str, Any]:
        _known(params.process, ctx.state.pm2_memory, "PM2 process")
        ctx.state.leaking.add(params.process)
        return {}

    async def active(self, ctx: SandboxContext, params: ProcessParams) -> bool:
        return params.process in ctx.state.leaking

    async def clear(self, ctx: SandboxContext, params: ProcessParams) -> None:
        pm2_services.free_leak(ctx.state, params.process)


class MemoryLeakParams(ServiceParams):
    service: str = "trade_executor"
    mib_per_second: Annotated[int, Field(ge=1, le=256)] = 4
    # 230 MiB of the sandbox's 256 MiB limit: above 80 % (seed 002, Memory Leaks) without an OOM kill
    up_to_mib: Annotated[int, Field(ge=1, le=4096)] = 230


class MemoryLeak(Fault):
    name = "memory_leak"
    params_model = MemoryLeakParams
    description = (
        "a process in the service's real container holds memory growing by mib_per_second up to up_to_mib MiB, "
        "until the container is restarted"
    )

    async def inject(self, ctx: SandboxContext, params: MemoryLeakParams) -> dict[str, Any]:
        _known(params.service, ctx.state.services, "service")
        container = ctx.containers.get(params.service)
        if container is None:
            raise FaultError(409, f"service {params.service!r} has no container (start with --container)")
        client = ctx.backends.docker()
        if not await containers.is_running(client, container):
            raise FaultError(409, f"the container {container!r} of {params.service!r} is not running")
        await containers.start_leak(client, container, params.mib_per_second, params.up_to_mib)
        return {"container": container, "up_to_bytes": params.up_to_mib * 1024 * 1024}

    async def active(self, ctx: SandboxContext, params: MemoryLeakParams) -> bool:
        container = ctx.containers.get(params.service)
        return container is not None and await containers.leaking(ctx.backends.docker(), container)

    async def clear(self, ctx: SandboxContext, params: MemoryLeakParams) -> None:
        container = ctx.containers.get(params.service)
        if container is not None and await containers.leaking(ctx.backends.docker(), container):
            await containers.restart(ctx.backends.docker(), container)  # what frees a leak: a restart


class ProviderParams(FaultParams):
    provider: str = "alphavantage"

    def target(self) -> str:
        return self.provider


class ProviderQuotaExhausted(Fault):
    name = "provider_quota_exhausted"
    params_model = ProviderParams
    description = "the rate gate has spent one provider's quota: its /status shows 0 calls left until reset"

    async def inject(self, ctx: SandboxContext, params: ProviderParams) -> dict[str, Any]:
        _known(params.provider, ctx.state.quota_remaining, "provider")
        ctx.state.quota_remaining[params.provider] = 0
        return {}

    async def active(self, ctx: SandboxContext, params: ProviderParams) -> bool:
        return ctx.state.quota_remaining.get(params.provider) == 0

    async def clear(self, ctx: SandboxContext, params: ProviderParams) -> None:
        pm2_services.reset_quota(ctx.state, params.provider)


class BackupScriptParams(FaultParams):
    set: Literal["postgres", "redis"] = "postgres"

    def target(self) -> str:
        return self.set


class BackupScriptFailing(Fault):
    name = "backup_script_failed"
    params_model = BackupScriptParams
    description = "the last run of a backup script exited 1 (a manual run succeeds)"

    async def inject(self, ctx: SandboxContext, params: BackupScriptParams) -> dict[str, Any]:
        standins.write_status(ctx.standin_dir, params.set, 1)
        return {}

    async def active(self, ctx: SandboxContext, params: BackupScriptParams) -> bool:
        path = standins.status_path(ctx.standin_dir, params.set)
        return path.exists() and path.read_text().strip() != "0"

    async def clear(self, ctx: SandboxContext, params: BackupScriptParams) -> None:
        standins.write_status(ctx.standin_dir, params.set, 0)


class DataCorruption(Fault):
    name = "data_corruption"
    params_model = NoParams
    description = "the maintenance service's integrity checks find corrupt records (until restored by hand)"

    async def inject(self, ctx: SandboxContext, params: NoParams) -> dict[str, Any]:
        ctx.state.integrity_errors = 3
        return {}

    async def active(self, ctx: SandboxContext, params: NoParams) -> bool:
        return ctx.state.integrity_errors > 0

    async def clear(self, ctx: SandboxContext, params: NoParams) -> None:
        ctx.state.integrity_errors = 0
        ctx.state.maintenance_mode = None


class LargeLoss(Fault):
    name = "large_loss"
    params_model = NoParams
    description = "the day's P&L drops to -8 % of equity"

    async def inject(self, ctx: SandboxContext, params: NoParams) -> dict[str, Any]:
        ctx.state.daily_pnl_ratio = -0.08
        return {}

    async def active(self, ctx: SandboxContext, params: NoParams) -> bool:
        return ctx.state.daily_pnl_ratio < -0.05

    async def clear(self, ctx: SandboxContext, params: NoParams) -> None:
        ctx.state.daily_pnl_ratio = 0.004
        ctx.state.halted = False


class MarketDataStaleParams(FaultParams):
    stale_seconds: Annotated[float, Field(ge=0, le=7 * 24 * 3600)] = 120.0


class MarketDataStale(Fault):
    name = "market_data_stale"
    params_model = MarketDataStaleParams
    description = "the data collector stops storing market data: /data/status's last update stops advancing"

    async def inject(self, ctx: SandboxContext, params: MarketDataStaleParams) -> dict[str, Any]:
        _known("data_collector", ctx.state.services, "service")
        container = ctx.containers.get("data_collector")
        if container is not None:  # a restart of this container resumes collection (resume_if_restarted)
            ctx.state.market_data_frozen_start = await containers.started_at(ctx.backends.docker(), container)
        ctx.state.market_data_frozen_at = time.time() - params.stale_seconds
        return {"last_update": ctx.state.market_data_frozen_at, "container": container}

    async def active(self, ctx: SandboxContext, params: MarketDataStaleParams) -> bool:
        return ctx.state.market_data_frozen_at is not None

    async def clear(self, ctx: SandboxContext, params: MarketDataStaleParams) -> None:
        ctx.state.market_data_frozen_at = None
        ctx.state.market_data_frozen_start = None


async def resume_if_restarted(ctx: SandboxContext) -> bool:
    """Resume the data collector's market data once its container was restarted since collection stopped (seed
    002, Missing Market Data step 4: restart data collection); return whether it resumed."""
    container = ctx.containers.get("data_collector")
    started = ctx.state.market_data_frozen_start
    if container is None or started is None or ctx.state.market_data_frozen_at is None:
        return False
    client = ctx.backends.docker()
    if not await containers.is_running(client, container) or await containers.started_at(client, container) == started:
        return False
    ctx.state.market_data_frozen_at = None
    ctx.state.market_data_frozen_start = None
    return True


def fault_catalogue() -> dict[str, Fault]:
    """Return a fresh catalogue of every fault by name."""
    faults: list[Fault] = [
        ServiceDown(),
        ContainerDown(),
        ServiceUnhealthy(),
        SlowApi(),
        CollectorDegraded(),
        CollectorFailed(),
        GenerationStalled(),
        QueueBuildup(),
        PgIdleConnections(),
        BackupStale(),
        BackupMissing(),
        BackupCorrupt(),
        RedisFill(),
        AlertDeliveryFailing(),
        CircuitBreakerOpenFault(),
        ErrorRate(),
        PgLongQueries(),
        RateGateExhausted(),
        LosingStrategy(),
        Pm2CrashLoop(),
        Pm2MemoryLeak(),
        MemoryLeak(),
        ProviderQuotaExhausted(),
        BackupScriptFailing(),
        DataCorruption(),
        LargeLoss(),
        MarketDataStale(),
    ]
    return {fault.name: fault for fault in faults}
