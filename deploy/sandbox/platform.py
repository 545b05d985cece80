"""The simulated platform's own state: what its HTTP services answer, changed only by the chaos API."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field


class CollectorStatus(enum.StrEnum):
    """A collector's status as MasterTrade's /health/collectors reports it (seed 000, Daily Operations 3)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass
class Collector:
    """One market data collector with its circuit breaker."""

    name: str
    status: CollectorStatus = CollectorStatus.HEALTHY
    circuit_breaker_open: bool = False
    last_success: float = field(default_factory=time.time)
    error_count: int = 0


@dataclass
class ServiceState:
    """What one simulated service answers: listening, healthy, and how slowly."""

    name: str
    listening: bool = True
    healthy: bool = True
    delay_seconds: float = 0.0


@dataclass
class PlatformState:
    """All mutable simulation state of one sandbox instance (no module-level state anywhere)."""

    services: dict[str, ServiceState]
    collectors: dict[str, Collector]
    generation_stalled: bool = False
    alert_delivery_failing: bool = False
    # Spring services (seed 003): resilience4j breaker states and the share of requests answered with 5xx.
    circuit_breakers: dict[str, str] = field(default_factory=dict)
    error_ratio: float = 0.0
    half_open_at: dict[str, float] = field(default_factory=dict)  # breaker -> when it half-opens (monotonic)
    # AI Trading System v1.1 (seed 004): the engine's performance, the rate gate and PM2's processes.
    auto_trading: bool = True
    losing: bool = False
    rate_gate_exhausted: bool = False
    backoffs: int = 0
    pm2_restarts: dict[str, int] = field(default_factory=dict)
    crash_looping: set[str] = field(default_factory=set)
    pm2_memory: dict[str, int] = field(default_factory=dict)  # bytes each process holds (`pm2 jlist` monit.memory)
    leaking: set[str] = field(default_factory=set)
    quota_remaining: dict[str, int] = field(default_factory=dict)  # the rate gate's calls left, per provider
    # MasterTrade's queue consumers: hung ones (queue -> their container's start when they hung), draining ones.
    hung_consumers: dict[str, str] = field(default_factory=dict)
    draining: dict[str, asyncio.Task[int]] = field(default_factory=dict)

    # AI Trading System (seed 002): the maintenance service's view of the platform.
    maintenance_mode: str | None = None
    halted: bool = False
    integrity_errors: int = 0
    daily_pnl_ratio: float = 0.004
    # The data collector's last market-data update (epoch seconds) when collection has stopped; None: it collects.
    market_data_frozen_at: float | None = None
    market_data_frozen_start: str | None = None  # the collector's container start when it stopped (if it has one)

    @property
    def market_data_last_update(self) -> float:
        """When the data collector last stored market data: a second ago while it collects, else when it stopped."""
        if self.market_data_frozen_at is not None:
            return self.market_data_frozen_at
        return time.time() - 1.0

    def tick_breakers(self) -> None:
        """Half-open each open breaker whose wait in the open state is over (resilience4j's automatic transition)."""
        for name, at in list(self.half_open_at.items()):
            if time.monotonic() >= at:
                del self.half_open_at[name]
                if self.circuit_breakers.get(name) == "open":
                    self.circuit_breakers[name] = "half_open"

    def tick_v11(self) -> bool:
        """Advance the simulated counters by one second; return whether PM2's process list changed."""
        if self.rate_gate_exhausted:
            self.backoffs += 1
        for name in self.crash_looping:
            self.pm2_restarts[name] = self.pm2_restarts.get(name, 0) + 1
        return bool(self.crash_looping)

    @property
    def sharpe_ratio(self) -> float:
        """The strategy's Sharpe ratio: negative while losing and trading; flat (0) once trading is off."""
        if not self.auto_trading:
            return 0.0
        return -0.8 if self.losing else 1.4

    @property
    def drawdown_ratio(self) -> float:
        """How far the equity curve is below its peak."""
        return 0.08 if self.losing else 0.01

    @classmethod
    def create(
        cls, service_names: tuple[str, ...], collector_names: tuple[str, ...], breakers: tuple[str, ...] = ()
    ) -> PlatformState:
        """Build a healthy platform with the given services, collectors and circuit breakers (all closed)."""
        return cls(
            services={name: ServiceState(name) for name in service_names},
            collectors={name: Collector(name) for name in collector_names},
            circuit_breakers=dict.fromkeys(breakers, "closed"),
        )

    def tick_collectors(self) -> None:
        """Advance healthy and degraded collectors' last success time, as a running platform would."""
        now = time.time()
        for collector in self.collectors.values():
            if collector.status is not CollectorStatus.FAILED:
                collector.last_success = now

    def reset_collector(self, name: str) -> None:
        """Close a collector's circuit breaker and mark it healthy (the service's own reset endpoint)."""
        collector = self.collectors[name]
        collector.status = CollectorStatus.HEALTHY
        collector.circuit_breaker_open = False
        collector.error_count = 0
        collector.last_success = time.time()
