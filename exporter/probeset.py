"""The probes built from one configuration, with the clients they share; replaced whole on reload."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp

from exporter.config import ExporterConfig
from exporter.probes.actuator import ActuatorProbe
from exporter.probes.base import Probe
from exporter.probes.command import CommandProbe
from exporter.probes.containers import ContainersProbe
from exporter.probes.files import BackupProbe
from exporter.probes.http import CollectorsProbe, ServiceHealthProbe
from exporter.probes.postgres import PostgresProbe, SqlProbe, StrategyGenerationProbe
from exporter.probes.rabbitmq import RabbitMQProbe
from exporter.probes.redis import RedisProbe
from exporter.probes.websocket import WebSocketProbe
from exporter.scrape import SharedRounds


@dataclass
class ProbeSet:
    """Every probe of one configuration and the rounds that run them (one at a time, shared by overlapping
    scrapes); in-flight scrapes are counted so that close() waits for them and for the round in progress."""

    config: ExporterConfig
    probes: list[Probe]
    session: aiohttp.ClientSession
    rounds: SharedRounds
    _in_flight: int = field(default=0, init=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """How many scrapes are using this set right now."""
        return self._in_flight

    def enter(self) -> None:
        """Mark one scrape as using this set."""
        self._in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        """Mark one scrape as done with this set."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def close(self) -> None:
        """Wait for in-flight scrapes and the round in progress, then close every probe's clients and the shared HTTP
        session."""
        await self._idle.wait()
        await self.rounds.wait_idle()
        await asyncio.gather(*(probe.close() for probe in self.probes), return_exceptions=True)
        await self.session.close()


def build_probe_set(config: ExporterConfig) -> ProbeSet:
    """Create the probes of a configuration; nothing connects until the first scrape."""
    max_bytes = config.exporter.max_response_bytes
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=8, ttl_dns_cache=300)
    session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "tradeops-exporter"})
    probes_config = config.probes
    probes: list[Probe] = []
    probes += [ServiceHealthProbe(c, session, max_bytes) for c in probes_config.service_health]
    probes += [CollectorsProbe(c, session, max_bytes) for c in probes_config.collectors]
    probes += [StrategyGenerationProbe(c) for c in probes_config.strategy_generation]
    probes += [BackupProbe(c) for c in probes_config.backups]
    probes += [RabbitMQProbe(c, session, max_bytes) for c in probes_config.rabbitmq]
    probes += [RedisProbe(c) for c in probes_config.redis]
    probes += [PostgresProbe(c) for c in probes_config.postgres]
    probes += [SqlProbe(c) for c in probes_config.sql]
    probes += [CommandProbe(c) for c in probes_config.command]
    probes += [ContainersProbe(c, max_bytes) for c in probes_config.containers]
    probes += [WebSocketProbe(c, session) for c in probes_config.websocket]
    probes += [ActuatorProbe(c, session, max_bytes) for c in probes_config.actuator]
    return ProbeSet(config, probes, session, SharedRounds(probes, config.exporter.max_concurrent_probes))
