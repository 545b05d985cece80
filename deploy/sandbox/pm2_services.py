"""The AI Trading System v1.1 services (seed 004): the trading engine (health on /health and /api/health, the
market feed WebSocket, performance gauges, the auto-trading switch) and the rate gate (status, backoff count,
reset), each with its own /metrics."""

from __future__ import annotations

import contextlib
import time

from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.web import metrics_response
from sandbox.context import SandboxContext
from sandbox.platform import PlatformState

V11_CONTEXT = web.AppKey("v11_context", SandboxContext)
V11_REGISTRY = web.AppKey("v11_registry", CollectorRegistry)


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


async def disable_trading(request: web.Request) -> web.Response:
    """POST /api/trading/disable: stop opening positions (seed 004, Negative Sharpe Ratio with Drawdown)."""
    request.app[V11_CONTEXT].state.auto_trading = False
    return web.json_response({"auto_trading": False})


async def gate_status(request: web.Request) -> web.Response:
    """GET /status of the rate gate."""
    state = request.app[V11_CONTEXT].state
    return web.json_response({"state": "backoff" if state.rate_gate_exhausted else "ok", "backoffs": state.backoffs})


async def gate_reset(request: web.Request) -> web.Response:
    """POST /reset: the glossary's reset of the rate gate's windows."""
    request.app[V11_CONTEXT].state.rate_gate_exhausted = False
    return web.json_response({"state": "ok"})


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
        app.router.add_post("/api/trading/disable", disable_trading)
    else:
        registry.register(RateGateGauges(ctx.state))
        app.router.add_get("/status", gate_status)
        app.router.add_post("/reset", gate_reset)
