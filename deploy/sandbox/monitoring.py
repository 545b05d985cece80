"""MasterTrade's monitoring stand-in on :3000 (seed 000, Service Inventory): Grafana's `/api/health` and the
Monitoring UI's landing and login pages, both faulted like any service (service_down, service_unhealthy)."""

from __future__ import annotations

from aiohttp import web

from sandbox.context import SandboxContext

MONITORING_CONTEXT = web.AppKey("monitoring_context", SandboxContext)
MONITORING_SERVICE = web.AppKey("monitoring_service", str)
GRAFANA_VERSION = "10.4.2"
LOGIN_PAGE = "<!doctype html><html><head><title>Grafana</title></head><body>Log in</body></html>"


def _healthy(request: web.Request) -> bool:
    return request.app[MONITORING_CONTEXT].state.services[request.app[MONITORING_SERVICE]].healthy


async def api_health(request: web.Request) -> web.Response:
    """GET /api/health as Grafana answers it: `{"database": "ok", ...}`, or 503 with `failing` while unhealthy."""
    healthy = _healthy(request)
    body = {"commit": "sandbox", "database": "ok" if healthy else "failing", "version": GRAFANA_VERSION}
    return web.json_response(body, status=200 if healthy else 503)


async def landing(request: web.Request) -> web.Response:
    """GET /: the UI sends an anonymous client on to its login page, as Grafana does."""
    raise web.HTTPFound("/login")


async def login(request: web.Request) -> web.Response:
    """GET /login: the UI's login page (200), or 503 while the service is unhealthy."""
    if not _healthy(request):
        return web.Response(status=503, text="Service Unavailable")
    return web.Response(text=LOGIN_PAGE, content_type="text/html")


def add_monitoring_routes(app: web.Application, ctx: SandboxContext, service: str) -> None:
    """Give the monitoring service Grafana's health endpoint and the UI's pages."""
    app[MONITORING_CONTEXT] = ctx
    app[MONITORING_SERVICE] = service
    app.router.add_get("/api/health", api_health)
    app.router.add_get("/", landing)
    app.router.add_get("/login", login)
