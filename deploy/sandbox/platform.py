"""The simulated platform's own state: what its HTTP services answer, changed only by the chaos API."""

from __future__ import annotations

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
