"""Redis memory against maxmemory, evictions and clients (seed 000, Issue 4)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from common.config import read_secret_file
from exporter.config import RedisConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink


class RedisProbe(Probe):
    """Reads INFO memory, stats and clients; maxmemory 0 (unset) is reported as 0 for rules to guard."""

    kind = "redis"

    def __init__(self, config: RedisConfig) -> None:
        super().__init__(config.name, config.timeout_seconds)
        password = read_secret_file(config.password_file) if config.password_file else None
        self.client = aioredis.Redis.from_url(
            config.url.get_secret_value(),
            password=password,
            socket_timeout=config.timeout_seconds,
            socket_connect_timeout=config.timeout_seconds,
            max_connections=4,
        )

    async def collect(self, sink: MetricSink) -> None:
        try:
            info = await self.client.info()
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise ProbeError("connection", str(error)) from error
        except RedisError as error:
            raise ProbeError("protocol", str(error)) from error
        labels = {"instance_name": self.target}
        try:
            used = float(info["used_memory"])
            maxmemory = float(info.get("maxmemory", 0))
            evicted = float(info.get("evicted_keys", 0))
            clients = float(info.get("connected_clients", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise ProbeError("bad_result", f"INFO lacks a numeric field: {error}") from error
        sink.gauge("tradeops_redis_memory_used_bytes", "Memory Redis has allocated (used_memory).", labels, used)
        sink.gauge("tradeops_redis_memory_max_bytes", "Redis maxmemory; 0 means no limit is set.", labels, maxmemory)
        sink.counter("tradeops_redis_evicted_keys", "Keys Redis evicted because of maxmemory.", labels, evicted)
        sink.gauge("tradeops_redis_connected_clients", "Clients connected to Redis.", labels, clients)

    async def close(self) -> None:
        await self.client.aclose()
