"""A Spring Boot service as TradeMaster runs it (seed 003): actuator health with components, JVM memory meters on
/actuator/metrics, resilience4j circuit breakers with the runbook's transition endpoint, Hikari pool gauges read
from the real PostgreSQL, and an order API kept busy by a steady trickle of simulated traffic, all on
/actuator/prometheus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from common.web import json_error, metrics_response
from sandbox.backends import BackendUnavailableError
from sandbox.context import SandboxContext

POOL_MAX = 10  # seed 003, Incident 4: "maximum-pool-size: 10"
TRAFFIC_INTERVAL_SECONDS = 0.05
TRANSITIONS = {"forceClosed": "closed", "forceOpen": "forced_open", "halfOpen": "half_open", "close": "closed"}
BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")


@dataclass
class OrderNumbers:
    """Numbers the service's orders (and picks which fail while the error_rate fault is on)."""

    last: int = 0

    def next(self) -> int:
        """Return the next order number."""
        self.last += 1
        return self.last


class SpringKeys:
    """The app keys of a Spring service (one set per process, never mutated)."""

    CONTEXT = web.AppKey("spring_context", SandboxContext)
    REGISTRY = web.AppKey("spring_registry", CollectorRegistry)
    PLACED = web.AppKey("orders_placed", Counter)
    FAILED = web.AppKey("orders_failed", Counter)
    BREAKER = web.AppKey("breaker_state", Gauge)
    HIKARI = web.AppKey("hikari", dict[str, Gauge])
    SEQUENCE = web.AppKey("sequence", OrderNumbers)
    SELF_URL = web.AppKey("self_url", str)


async def actuator_health(request: web.Request) -> web.Response:
    """GET /actuator/health: `UP` with components, or `DOWN` (503) while the service is unhealthy."""
    ctx = request.app[SpringKeys.CONTEXT]
    healthy = all(s.healthy for s in ctx.state.services.values())
    breakers_ok = all(state == "closed" for state in ctx.state.circuit_breakers.values())
    body = {
        "status": "UP" if healthy else "DOWN",
        "components": {
            "db": {"status": "UP"},
            "redis": {"status": "UP"},
            "diskSpace": {"status": "UP"},
            "circuitBreakers": {"status": "UP" if breakers_ok else "CIRCUIT_OPEN"},
        },
    }
    return web.json_response(body, status=200 if healthy else 503)


async def circuit_breakers(request: web.Request) -> web.Response:
    """GET /actuator/circuitbreakers: every breaker and its state."""
    states = request.app[SpringKeys.CONTEXT].state.circuit_breakers
    return web.json_response({"circuitBreakers": [{"name": n, "state": s.upper()} for n, s in sorted(states.items())]})


async def transition(request: web.Request) -> web.Response:
    """POST /actuator/circuitbreakers/{name}/transition/{state}: the runbook's manual reset (Incident 3)."""
    states = request.app[SpringKeys.CONTEXT].state.circuit_breakers
    name, target = request.match_info["name"], request.match_info["state"]
    if name not in states:
        return json_error(404, f"unknown circuit breaker {name!r}")
    if target not in TRANSITIONS:
        return json_error(400, f"unknown transition {target!r}; known: {', '.join(sorted(TRANSITIONS))}")
    states[name] = TRANSITIONS[target]
    return web.json_response({"name": name, "state": states[name].upper()})


# Seed 003, Incident 2 step 3: `curl :8080/actuator/metrics/jvm.memory.used`. A JVM with a 1 GiB heap at a steady
# 40 % and 128 MiB of non-heap (Micrometer: jvm.memory.max is -1 where there is no limit).
JVM_MEMORY = {
    "jvm.memory.used": {"heap": 0.4 * 2**30, "nonheap": 96 * 2**20},
    "jvm.memory.max": {"heap": float(2**30), "nonheap": -1.0},
    "jvm.memory.committed": {"heap": 0.5 * 2**30, "nonheap": 128 * 2**20},
}


async def actuator_metrics(request: web.Request) -> web.Response:
    """GET /actuator/metrics: the names of the meters the service has."""
    return web.json_response({"names": sorted(JVM_MEMORY)})


async def actuator_metric(request: web.Request) -> web.Response:
    """GET /actuator/metrics/{name}?tag=area:heap: one JVM memory meter, summed over the areas the tags leave."""
    areas = JVM_MEMORY.get(request.match_info["name"])
    if areas is None:
        return json_error(404, f"no meter {request.match_info['name']!r}")
    wanted = [tag.split(":", 1)[1] for tag in request.query.getall("tag", []) if tag.startswith("area:")]
    values = [value for area, value in areas.items() if not wanted or area in wanted]
    total = -1.0 if any(value < 0 for value in values) else sum(values)
    return web.json_response(
        {
            "name": request.match_info["name"],
            "baseUnit": "bytes",
            "measurements": [{"statistic": "VALUE", "value": total}],
            "availableTags": [{"tag": "area", "values": sorted(areas)}],
        }
    )


async def place_order(request: web.Request) -> web.Response:
    """POST /api/v1/orders: placed (201), refused by the open broker breaker (503), or failing (500)."""
    app = request.app
    state = app[SpringKeys.CONTEXT].state
    number = app[SpringKeys.SEQUENCE].next()
    if state.error_ratio > 0 and number % max(1, round(1 / state.error_ratio)) == 0:
        return json_error(500, "simulated failure")
    if state.circuit_breakers.get("brokerService", "closed") != "closed":
        app[SpringKeys.FAILED].labels("circuit_open").inc()
        return json_error(503, "broker circuit breaker is open")
    app[SpringKeys.PLACED].inc()
    return web.json_response({"order": number, "status": "PLACED"}, status=201)


async def prometheus(request: web.Request) -> web.Response:
    """GET /actuator/prometheus: Micrometer-style metrics, breaker states and the Hikari pool, read now."""
    app = request.app
    ctx = app[SpringKeys.CONTEXT]
    for name, current in ctx.state.circuit_breakers.items():
        for state in BREAKER_STATES:
            app[SpringKeys.BREAKER].labels(name, state).set(1 if state == current else 0)
    with contextlib.suppress(BackendUnavailableError, OSError):
        pool = await ctx.postgres()
        rows = await pool.fetch(
            "SELECT state, count(*) AS n FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database() GROUP BY state",
            ctx.profile.application_name,
        )
        by_state = {row["state"]: row["n"] for row in rows}
        active = by_state.get("active", 0)
        hikari = app[SpringKeys.HIKARI]
        hikari["active"].labels("HikariPool-1").set(min(active, POOL_MAX))
        hikari["idle"].labels("HikariPool-1").set(max(0, POOL_MAX - active))
        hikari["pending"].labels("HikariPool-1").set(max(0, active - POOL_MAX))
        hikari["max"].labels("HikariPool-1").set(POOL_MAX)
    return metrics_response(app[SpringKeys.REGISTRY])


async def traffic(app: web.Application) -> None:
    """Place an order every TRAFFIC_INTERVAL_SECONDS, as the platform's clients would."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post(app[SpringKeys.SELF_URL] + "/api/v1/orders", json={"symbol": "NIFTY"}) as r:
                    await r.read()
            await asyncio.sleep(TRAFFIC_INTERVAL_SECONDS)


def add_spring_routes(app: web.Application, ctx: SandboxContext, registry: CollectorRegistry, self_url: str) -> None:
    """Give a service app the actuator endpoints, the order API, their metrics and the traffic loop."""
    app[SpringKeys.CONTEXT] = ctx
    app[SpringKeys.REGISTRY] = registry
    app[SpringKeys.SEQUENCE] = OrderNumbers()
    app[SpringKeys.SELF_URL] = self_url
    app[SpringKeys.PLACED] = Counter("orders_placed", "Orders placed.", registry=registry)
    app[SpringKeys.FAILED] = Counter("orders_failed", "Orders that failed.", ["reason"], registry=registry)
    app[SpringKeys.BREAKER] = Gauge(
        "resilience4j_circuitbreaker_state", "1 for the breaker's current state.", ["name", "state"], registry=registry
    )
    app[SpringKeys.HIKARI] = {
        kind: Gauge(f"hikaricp_connections_{kind}", f"Hikari pool connections: {kind}.", ["pool"], registry=registry)
        for kind in ("active", "idle", "pending", "max")
    }
    app.router.add_get("/actuator/health", actuator_health)
    app.router.add_get("/actuator/prometheus", prometheus)
    app.router.add_get("/actuator/metrics", actuator_metrics)
    app.router.add_get("/actuator/metrics/{name}", actuator_metric)
    app.router.add_get("/actuator/circuitbreakers", circuit_breakers)
    app.router.add_post("/actuator/circuitbreakers/{name}/transition/{state}", transition)
    app.router.add_post("/api/v1/orders", place_order)

    async def traffic_loop(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(traffic(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(traffic_loop)
