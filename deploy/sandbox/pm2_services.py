"""The AI Trading System v1.1 services (seed 004): the trading engine (health on /health and /api/health, the
market feed WebSocket, performance gauges, its Node.js heap, the auto-trading switch) and the rate gate (status
with per-provider quotas, backoff count, reset of the gate or of one provider), each with its own /metrics; and
the PM2 host they run on (the process list `pm2 jlist` prints: restarts and memory per process)."""

from __future__ import annotations

import contextlib
import os
import time

from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.web import metrics_response
from sandbox import standins
from sandbox.context import SandboxContext
from sandbox.platform import PlatformState

MIB = 1024 * 1024
# What each PM2 process holds when it has just started (monit.memory); any other process 100 MiB.
PM2_BASELINE_BYTES = {"trading-engine": 180 * MIB, "rate-gate": 64 * MIB, "market-data-worker": 120 * MIB}
LEAK_SHARE_PER_SECOND = 0.01  # of the host's memory: a leak crosses a limit of 30 % of it in under half a minute
# The rate gate's daily quota per market data provider (seed 004 names alphavantage's reset); a healthy gate has
# used a fifth of each.
PROVIDER_QUOTAS = {"alphavantage": 500, "polygon": 5000}

V11_CONTEXT = web.AppKey("v11_context", SandboxContext)
V11_REGISTRY = web.AppKey("v11_registry", CollectorRegistry)


def host_memory_bytes() -> int:
    """The memory of the host the sandbox runs on (what node_exporter reports as MemTotal, near enough)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def baseline_bytes(process: str) -> int:
    """What a PM2 process holds just after it started."""
    return PM2_BASELINE_BYTES.get(process, 100 * MIB)


def free_leak(state: PlatformState, process: str) -> None:
    """The process restarted: its leak is gone and its memory is back to its baseline."""
    state.leaking.discard(process)
    state.pm2_memory[process] = baseline_bytes(process)


def reset_quota(state: PlatformState, provider: str) -> None:
    """Give one provider its whole quota again."""
    state.quota_remaining[provider] = PROVIDER_QUOTAS[provider]


def start_host(ctx: SandboxContext) -> None:
    """Every PM2 process online at its baseline with no restarts, every provider's quota a fifth used."""
    state = ctx.state
    state.pm2_restarts = dict.fromkeys(ctx.profile.pm2_processes, 0)
    state.pm2_memory = {name: baseline_bytes(name) for name in ctx.profile.pm2_processes}
    state.quota_remaining = {name: limit * 4 // 5 for name, limit in PROVIDER_QUOTAS.items()}
    standins.write_pm2(ctx.standin_dir, state.pm2_restarts, state.pm2_memory)


def tick_host(ctx: SandboxContext) -> None:
    """One second of the PM2 host: the restarts `pm2 restart` asked for (each frees that process's memory and
    counts a restart), the crash loop, the leak; the process list is rewritten when it changed."""
    state = ctx.state
    restarted = standins.take_restart_requests(ctx.standin_dir, state.pm2_restarts)
    for process in restarted:
        state.pm2_restarts[process] += 1
        free_leak(state, process)
    host = host_memory_bytes()
    for process in state.leaking:
        state.pm2_memory[process] = min(state.pm2_memory[process] + int(host * LEAK_SHARE_PER_SECOND), host)
    if state.tick_v11() or restarted or state.leaking:
        standins.write_pm2(ctx.standin_dir, state.pm2_restarts, state.pm2_memory)


class EngineGauges(Collector):
    """The engine's performance gauges, read from the platform state at each scrape."""

    def __init__(self, state: PlatformState) -> None:
        self.state = state

    def collect(self) -> list[GaugeMetricFamily]:
        """Yield the Sharpe ratio, the drawdown and whether auto-trading is on."""
        return [
            GaugeMetricFamily("trading_sharpe_ratio", "Rolling Sharpe ratio of the strategy.", self.state.sharpe_ratio),
            GaugeMetricFamily(
                "trading_equity_drawdown_ratio", "Equity curve below its peak.", self.state.drawdown_ratio
            ),
            GaugeMetricFamily("trading_auto_enabled", "1 while auto-trading is on.", int(self.state.auto_trading)),
        ]


class RateGateGauges(Collector):
    """The rate gate's backoff count (monotonic since start, as the glossary's trigger reads it)."""

    def __init__(self, state: PlatformState) -> None:
        self.state = state

    def collect(self) -> list[GaugeMetricFamily]:
        """Yield the number of backoffs so far."""
        return [GaugeMetricFamily("rate_gate_backoff_count", "Backoffs since start.", self.state.backoffs)]


async def engine_health(request: web.Request) -> web.Response:
    """GET /health of the trading engine."""
    state = request.app[V11_CONTEXT].state
    healthy = state.services["trading_engine"].healthy
    body = {"status": "healthy" if healthy else "unhealthy", "auto_trading": state.auto_trading}
    return web.json_response(body, status=200 if healthy else 503)


async def market_feed(request: web.Request) -> web.StreamResponse:
    """GET /ws/market: the engine's market feed (seed 004, WebSocket Connection Issues: `wscat -c
    ws://localhost:8000/ws/market`); a tick at once and every second, none while the engine is unhealthy."""
    state = request.app[V11_CONTEXT].state
    if not state.services["trading_engine"].healthy:
        return web.json_response({"status": "unhealthy"}, status=503)  # no upgrade: the probe's `handshake`
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    while not ws.closed and state.services["trading_engine"].healthy:
        await ws.send_json({"symbol": "NIFTY", "sharpe_ratio": state.sharpe_ratio, "at": time.time()})
        with contextlib.suppress(TimeoutError):
            message = await ws.receive(timeout=1)
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    await ws.close()
    return ws


async def performance(request: web.Request) -> web.Response:
    """GET /api/metrics/performance: what the glossary's first diagnosis step reads."""
    state = request.app[V11_CONTEXT].state
    return web.json_response({"sharpe_ratio": state.sharpe_ratio, "drawdown": state.drawdown_ratio})


async def memory(request: web.Request) -> web.Response:
    """GET /api/metrics/memory: the engine's Node.js `process.memoryUsage()` (seed 004, High Memory Usage: "Check
    Node.js heap usage"); its resident size is the trading-engine process's memory in `pm2 jlist`."""
    rss = request.app[V11_CONTEXT].state.pm2_memory.get("trading-engine", baseline_bytes("trading-engine"))
    body = {"rss": rss, "heapTotal": rss * 7 // 10, "heapUsed": rss * 6 // 10, "external": rss // 20}
    return web.json_response(body)


async def disable_trading(request: web.Request) -> web.Response:
    """POST /api/trading/disable: stop opening positions (seed 004, Negative Sharpe Ratio with Drawdown)."""
    request.app[V11_CONTEXT].state.auto_trading = False
    return web.json_response({"auto_trading": False})


async def gate_status(request: web.Request) -> web.Response:
    """GET /status of the rate gate, with each provider's quota (seed 004, Rate Limiting Issues: "Check current
    quotas")."""
    state = request.app[V11_CONTEXT].state
    providers = [
        {"name": name, "limit": limit, "remaining": state.quota_remaining.get(name, limit)}
        for name, limit in PROVIDER_QUOTAS.items()
    ]
    body = {"state": "backoff" if state.rate_gate_exhausted else "ok", "backoffs": state.backoffs}
    return web.json_response({**body, "providers": providers})


async def gate_reset(request: web.Request) -> web.Response:
    """POST /reset: the glossary's reset of the rate gate's windows, every provider's quota with them."""
    state = request.app[V11_CONTEXT].state
    state.rate_gate_exhausted = False
    for provider in PROVIDER_QUOTAS:
        reset_quota(state, provider)
    return web.json_response({"state": "ok"})


async def provider_reset(request: web.Request) -> web.Response:
    """POST /reset/{provider}: one provider's quota only (seed 004: `curl -X POST :3001/reset/alphavantage`)."""
    provider = request.match_info["provider"]
    if provider not in PROVIDER_QUOTAS:
        return web.json_response({"error": f"unknown provider {provider!r}"}, status=404)
    state = request.app[V11_CONTEXT].state
    reset_quota(state, provider)
    return web.json_response({"provider": provider, "remaining": state.quota_remaining[provider]})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics of either service."""
    return metrics_response(request.app[V11_REGISTRY])


def add_pm2_routes(app: web.Application, ctx: SandboxContext, service: str, registry: CollectorRegistry) -> None:
    """Give one of the v1.1 services its endpoints and metrics."""
    app[V11_CONTEXT] = ctx
    app[V11_REGISTRY] = registry
    app.router.add_get("/metrics", metrics)
    if service == "trading_engine":
        registry.register(EngineGauges(ctx.state))
        app.router.add_get("/health", engine_health)
        app.router.add_get("/api/health", engine_health)  # seed 004's health check: curl :8000/api/health
        app.router.add_get("/ws/market", market_feed)
        app.router.add_get("/api/metrics/performance", performance)
        app.router.add_get("/api/metrics/memory", memory)
        app.router.add_post("/api/trading/disable", disable_trading)
    else:
        registry.register(RateGateGauges(ctx.state))
        app.router.add_get("/status", gate_status)
        app.router.add_post("/reset", gate_reset)
        app.router.add_post("/reset/{provider}", provider_reset)
