"""The AI Trading System's maintenance service (seed 002, port 8007): health score, data integrity and the
day's P&L on /health, maintenance mode and the emergency halt; and the data collector's /data/status (port
8001), whose last update stops advancing while the market_data_stale fault holds."""

from __future__ import annotations

import datetime as dt
import time

from aiohttp import web

from common.web import json_error
from sandbox.context import SandboxContext

AI_CONTEXT = web.AppKey("ai_context", SandboxContext)
MODES = ("read_only", "full")
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "SPY")


async def maintenance_health(request: web.Request) -> web.Response:
    """GET /health: status, health score, integrity errors and the day's P&L (what value_paths read)."""
    state = request.app[AI_CONTEXT].state
    healthy_services = sum(1 for s in state.services.values() if s.healthy and s.listening)
    score = round(100 * healthy_services / max(1, len(state.services)), 1)
    if state.integrity_errors:
        score = min(score, 60.0)
    body = {
        "status": "healthy" if state.services["maintenance"].healthy else "unhealthy",
        "health_score": score,
        "maintenance_mode": state.maintenance_mode,
        "trading_halted": state.halted,
        "integrity": {"errors": state.integrity_errors},
        "pnl": {"daily_ratio": state.daily_pnl_ratio},
    }
    return web.json_response(body, status=200 if state.services["maintenance"].healthy else 503)


async def enter_maintenance(request: web.Request) -> web.Response:
    """POST /maintenance/enter {mode, reason}: stop trading (full) or data writes (read_only)."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        return json_error(400, "body is not JSON")
    mode = body.get("mode", "full") if isinstance(body, dict) else "full"
    if mode not in MODES:
        return json_error(422, f"mode must be one of {', '.join(MODES)}")
    request.app[AI_CONTEXT].state.maintenance_mode = mode
    return web.json_response({"maintenance_mode": mode})


async def exit_maintenance(request: web.Request) -> web.Response:
    """POST /maintenance/exit."""
    request.app[AI_CONTEXT].state.maintenance_mode = None
    return web.json_response({"maintenance_mode": None})


async def emergency_halt(request: web.Request) -> web.Response:
    """POST /emergency/halt: stop all trading at once (seed 002, Trading Halt Procedures)."""
    request.app[AI_CONTEXT].state.halted = True
    return web.json_response({"trading_halted": True})


def add_maintenance_routes(app: web.Application, ctx: SandboxContext) -> None:
    """Give the maintenance service its own /health and its control endpoints."""
    app[AI_CONTEXT] = ctx
    app.router.add_get("/health", maintenance_health)
    app.router.add_post("/maintenance/enter", enter_maintenance)
    app.router.add_post("/maintenance/exit", exit_maintenance)
    app.router.add_post("/emergency/halt", emergency_halt)


async def data_status(request: web.Request) -> web.Response:
    """GET /data/status: the collector's market-data freshness (seed 002, `curl :8001/data/status`), its last
    update in epoch seconds (what the exporter's value_paths read) and as ISO 8601."""
    state = request.app[AI_CONTEXT].state
    last = state.market_data_last_update
    body = {
        "status": "ok" if state.services["data_collector"].healthy else "unhealthy",
        "last_update": round(last, 3),
        "last_update_iso": dt.datetime.fromtimestamp(last, dt.UTC).isoformat(),
        "age_seconds": round(max(0.0, time.time() - last), 3),
        "symbols": list(SYMBOLS),
    }
    return web.json_response(body, status=200 if state.services["data_collector"].healthy else 503)


def add_data_collector_routes(app: web.Application, ctx: SandboxContext) -> None:
    """Give the data collector its /data/status next to its /health."""
    app[AI_CONTEXT] = ctx
    app.router.add_get("/data/status", data_status)
