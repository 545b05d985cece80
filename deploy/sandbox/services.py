"""The simulated services' HTTP endpoints (seed 000, Service Inventory and the APIs its runbook calls)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from common.web import json_error, metrics_response
from sandbox import generation
from sandbox.ai_services import add_data_collector_routes, add_maintenance_routes
from sandbox.backends import BackendUnavailableError
from sandbox.context import SandboxContext
from sandbox.faults import STALLED_AFTER
from sandbox.monitoring import add_monitoring_routes
from sandbox.pm2_services import add_pm2_routes
from sandbox.spring import add_spring_routes

CONTEXT = web.AppKey("context", SandboxContext)
SERVICE = web.AppKey("service", str)
REGISTRY = web.AppKey("registry", CollectorRegistry)
DURATION = web.AppKey("duration", Histogram)
DELIVERIES = web.AppKey("deliveries", Counter)
STARTED = web.AppKey("started", float)
MONITORING_SERVICE = "grafana"  # seed 000's Grafana and Monitoring UI, both on :3000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the service's injected delay and record every request in its latency histogram."""
    app = request.app
    started = time.perf_counter()
    delay = app[CONTEXT].state.services[app[SERVICE]].delay_seconds
    if delay and request.path != app[CONTEXT].profile.metrics_path:
        await asyncio.sleep(delay)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        route = request.match_info.route.resource
        handler_name = route.canonical if route is not None else "unmatched"
        if request.path != app[CONTEXT].profile.metrics_path:
            app[DURATION].labels(handler_name, request.method, str(status)).observe(time.perf_counter() - started)


async def health(request: web.Request) -> web.Response:
    """GET /health: `{"status": "healthy"}`, or 503 with `unhealthy` while the fault is injected."""
    service = request.app[SERVICE]
    state = request.app[CONTEXT].state.services[service]
    body = {
        "status": "healthy" if state.healthy else "unhealthy",
        "service": service,
        "uptime_seconds": round(time.time() - request.app[STARTED], 3),
    }
    return web.json_response(body, status=200 if state.healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the service's own request-duration histogram (and delivery counters)."""
    return metrics_response(request.app[REGISTRY])


async def collectors(request: web.Request) -> web.Response:
    """GET /health/collectors: each collector's status, circuit breaker and last success."""
    state = request.app[CONTEXT].state
    body = {
        "collectors": {
            c.name: {
                "status": str(c.status),
                "circuit_breaker": "open" if c.circuit_breaker_open else "closed",
                "last_success_at": dt.datetime.fromtimestamp(c.last_success, dt.UTC).isoformat(),
                "error_count": c.error_count,
            }
            for c in state.collectors.values()
        }
    }
    return web.json_response(body)


async def reset_collector(request: web.Request) -> web.Response:
    """POST /api/collectors/{name}/reset: close the collector's circuit breaker and mark it healthy."""
    name = request.match_info["name"]
    state = request.app[CONTEXT].state
    if name not in state.collectors:
        return json_error(404, f"unknown collector {name!r}")
    state.reset_collector(name)
    return web.json_response({"collector": name, "status": "healthy", "circuit_breaker": "closed"})


async def generate(request: web.Request) -> web.Response:
    """POST /api/strategies/generate {"count": N}: write N real strategies into PostgreSQL."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return json_error(400, "body is not JSON")
    count = body.get("count") if isinstance(body, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        return json_error(422, "count must be an integer from 1 to 10000")
    try:
        run_id = await generation.generate(await request.app[CONTEXT].postgres(), count)
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    return web.json_response({"run_id": run_id, "generated": count, "status": "completed"}, status=202)


async def generation_status(request: web.Request) -> web.Response:
    """GET /api/strategies/generation/status: the newest run and whether generation has stalled."""
    try:
        status = await generation.status(await request.app[CONTEXT].postgres(), STALLED_AFTER)
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    last = status.last_generation.isoformat() if status.last_generation else None
    return web.json_response({"last_generation": last, "last_count": status.last_count, "status": status.status})


async def active_strategies(request: web.Request) -> web.Response:
    """GET /api/strategies/active: how many strategies are live."""
    try:
        count = await generation.active_count(await request.app[CONTEXT].postgres())
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    return web.json_response({"count": count})


async def recent_alerts(request: web.Request) -> web.Response:
    """GET /api/alerts/recent: the alert system's delivery success rate (seed 000, Daily Operations 4)."""
    failing = request.app[CONTEXT].state.alert_delivery_failing
    rate = 0.4 if failing else 1.0
    return web.json_response({"alerts": [], "delivery_success_rate": rate})


async def deliver_alerts(app: web.Application) -> None:
    """Simulate the alert system delivering notifications once a second."""
    while True:
        failing = app[CONTEXT].state.alert_delivery_failing
        app[DELIVERIES].labels("success").inc(4 if failing else 10)
        if failing:
            app[DELIVERIES].labels("failure").inc(6)
        await asyncio.sleep(1)


def build_service_app(ctx: SandboxContext, service: str, self_url: str = "") -> web.Application:
    """Build a fresh aiohttp app for one simulated service (a new one each time it comes back up); `self_url`
    is where it listens (a Spring service sends itself traffic)."""
    app = web.Application(middlewares=[instrument])
    registry = CollectorRegistry(auto_describe=True)
    app[CONTEXT] = ctx
    app[SERVICE] = service
    app[REGISTRY] = registry
    app[STARTED] = time.time()
    app[DURATION] = Histogram(
        ctx.profile.request_metric,
        "Time the service took to answer an HTTP request.",
        ["handler", "method", "status"],
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
    )
    if ctx.profile.kind == "spring":
        add_spring_routes(app, ctx, registry, self_url)
        return app
    if ctx.profile.kind == "pm2":
        add_pm2_routes(app, ctx, service, registry)
        return app
    app.router.add_get("/metrics", metrics)
    if ctx.profile.kind == "ai" and service == "maintenance":
        add_maintenance_routes(app, ctx)
        return app
    if service == MONITORING_SERVICE:
        add_monitoring_routes(app, ctx, service)
        return app
    app.router.add_get("/health", health)
    if ctx.profile.kind == "ai" and service == "data_collector":
        add_data_collector_routes(app, ctx)
    if service == ctx.profile.market_data_service:
        app.router.add_get("/health/collectors", collectors)
        app.router.add_post("/api/collectors/{name}/reset", reset_collector)
    if service == ctx.profile.strategy_service:
        app.router.add_post("/api/strategies/generate", generate)
        app.router.add_get("/api/strategies/generation/status", generation_status)
        app.router.add_get("/api/strategies/active", active_strategies)
    if service == "alert_system":
        app[DELIVERIES] = Counter(
            "alerts_delivered",
            "Notifications the alert system tried to deliver.",
            ["result"],
            registry=registry,
        )
        app.router.add_get("/api/alerts/recent", recent_alerts)

        async def delivery_loop(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(deliver_alerts(app))
            yield
            task.cancel()

        app.cleanup_ctx.append(delivery_loop)
    return app
