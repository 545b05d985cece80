"""What each simulated trading system looks like: its services, ports, collectors and queues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ServiceSpec:
    """One simulated HTTP service of a trading platform."""

    name: str
    port: int
    critical: bool
    description: str


@dataclass(frozen=True)
class Profile:
    """A simulated trading system, from one seed runbook."""

    name: str
    seed: str
    services: tuple[ServiceSpec, ...]
    # MasterTrade's collectors, generation and queues; other systems have none of them. Backups: MasterTrade's
    # and TradeMaster's sets (sandbox/backups.py).
    collectors: tuple[str, ...] = ()
    strategy_service: str = ""
    market_data_service: str = ""
    consumer_queues: tuple[str, ...] = ()
    queue_consumers: tuple[tuple[str, str], ...] = ()  # (queue, the service that consumes it)
    generation_target: int = 0
    backup_sets: tuple[str, ...] = ()
    kind: Literal["mastertrade", "spring", "pm2", "ai"] = "mastertrade"
    metrics_path: str = "/metrics"
    request_metric: str = "http_request_duration_seconds"
    circuit_breakers: tuple[str, ...] = ()
    application_name: str = "mastertrade_strategy"  # the sessions the service's own pool opens
    container_service: str = ""  # the service a real container stands for in the demo and e2e stacks
    pm2_processes: tuple[str, ...] = ()


# Seed 000, "Service Inventory": ports and criticality.
MASTERTRADE = Profile(
    name="mastertrade",
    seed="000 MasterTrade Operations Runbook",
    services=(
        ServiceSpec("market_data", 8000, True, "Market Data Service (collectors)"),
        ServiceSpec("data_access", 8005, False, "Data Access API"),
        ServiceSpec("strategy", 8006, True, "Strategy Service (generation)"),
        ServiceSpec("alert_system", 8007, False, "Alert System"),
        ServiceSpec("risk_manager", 8080, True, "Risk Manager"),
        ServiceSpec("order_executor", 8081, True, "Order Executor"),
        ServiceSpec("grafana", 3000, False, "Grafana and the Monitoring UI (medium)"),
    ),
    collectors=(
        "binance",
        "coinbase",
        "kraken",
        "coingecko",
        "fear_greed_index",
        "twitter_sentiment",
        "reddit_sentiment",
        "onchain_glassnode",
    ),
    strategy_service="strategy",
    market_data_service="market_data",
    consumer_queues=("strategy_service.signals", "risk_manager.orders", "order_executor.executions"),
    queue_consumers=(
        ("strategy_service.signals", "strategy"),
        ("risk_manager.orders", "risk_manager"),
        ("order_executor.executions", "order_executor"),
    ),
    generation_target=500,
    backup_sets=("postgres_daily", "postgres_incremental", "redis"),
    container_service="strategy",
)

# Seed 003: one Spring Boot service on 8080 (actuator, resilience4j, Hikari), PostgreSQL, Redis.
TRADEMASTER = Profile(
    name="trademaster",
    seed="003 TradeMaster Trading Service Operations Runbook",
    services=(ServiceSpec("trading_service", 8080, True, "TradeMaster Trading Service (Spring Boot actuator)"),),
    kind="spring",
    metrics_path="/actuator/prometheus",
    request_metric="http_server_requests_seconds",
    circuit_breakers=("brokerService", "marketDataService", "paymentGateway"),
    application_name="trademaster-trading-service",
    container_service="trading_service",
    backup_sets=("postgres_full",),  # Morning Checklist: ls -lh /var/backups/postgresql/full/
)

# Seed 004: a PM2-managed trading engine on 8000 and the market data rate gate on 3001.
AI_TRADING_V11 = Profile(
    name="ai-trading-v1.1",
    seed="004 AI Trading System - Operations Runbook v1.1",
    services=(
        ServiceSpec("trading_engine", 8000, True, "Trading engine (PM2 process trading-engine)"),
        ServiceSpec("rate_gate", 3001, False, "Rate gate for market data APIs"),
    ),
    kind="pm2",
    application_name="ai-trading-engine",
    pm2_processes=("trading-engine", "rate-gate", "market-data-worker"),
)

# Seed 002, Service Ports: seven services on 8001-8007; the maintenance service reports the health score.
AI_TRADING = Profile(
    name="ai-trading",
    seed="002 AI Trading System Operations Runbook",
    services=(
        ServiceSpec("data_collector", 8001, True, "Data Collector"),
        ServiceSpec("strategy_engine", 8002, True, "Strategy Engine"),
        ServiceSpec("risk_manager", 8003, True, "Risk Manager"),
        ServiceSpec("trade_executor", 8004, True, "Trade Executor"),
        ServiceSpec("scheduler", 8005, False, "Scheduler"),
        ServiceSpec("export_service", 8006, False, "Export Service"),
        ServiceSpec("maintenance", 8007, False, "Maintenance Service (health score, maintenance mode, halt)"),
    ),
    kind="ai",
    container_service="trade_executor",
)

PROFILES: dict[str, Profile] = {p.name: p for p in (MASTERTRADE, TRADEMASTER, AI_TRADING_V11, AI_TRADING)}


def collector_names(profile: Profile, count: int | None) -> tuple[str, ...]:
    """Return the profile's collectors, padded with numbered ones up to count (for load tests)."""
    if count is None or count <= len(profile.collectors):
        return profile.collectors if count is None else profile.collectors[:count]
    extra = tuple(f"collector_{index:03d}" for index in range(len(profile.collectors), count))
    return profile.collectors + extra
