"""The remediator's HTTP API: POST /webhook, GET /api/v1/remediations, metrics, health and reload."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import operator
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from common.config import ConfigError, validation_details
from common.logs import log_event
from common.web import healthy, json_error, metrics_response, read_limited
from remediator.app import build_registry, load_checked
from remediator.config import RemediatorConfig
from remediator.intake.inbox import pack
from remediator.intake.payload import parse_payload
from remediator.runtime.engine import Engine
from remediator.state.base import AuditUnavailableError, StateUnavailableError

logger = logging.getLogger("remediator.api")
STATUS = operator.itemgetter("status")


@dataclass
class Remediator:
    """The running service: its engine and where its configuration comes from."""

    engine: Engine
    config_path: Path | None
    loader: Callable[[Path], RemediatorConfig] = load_checked
    last_reload_error: str = field(default="")
    token: str | None = field(init=False)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        # Resolved once (env, inline or file), not per request; a reload resolves it again.
        self.token = self.engine.config.token()

    @property
    def config(self) -> RemediatorConfig:
        """The configuration in force."""
        return self.engine.config

    async def reload(self) -> ReloadOutcome:
        """Re-read the config: rules and bounds change, all state (incidents, limits, queue) is kept. An invalid
        file, or one that would remove or weaken authentication, is refused and the running config kept."""
        async with self._reload_lock:  # an HTTP reload and a SIGHUP never interleave
            if self.config_path is None:
                return ReloadOutcome(200)
            try:
                config = self.loader(self.config_path)
                token = config.token()  # its file may have changed since it was validated
            except (ConfigError, ValueError) as error:
                self.last_reload_error = error.render() if isinstance(error, ConfigError) else str(error)
                log_event(logger, logging.ERROR, "reload_failed", error=self.last_reload_error)
                return ReloadOutcome(500, "configuration invalid; keeping the previous one", self.last_reload_error)
            reason = weakened_authentication(self.config, self.token, config, token)
            if reason is not None:
                self.last_reload_error = reason
                log_event(logger, logging.ERROR, "reload_refused", reason=reason)
                return ReloadOutcome(409, f"reload refused, keeping the previous configuration: {reason}")
            await self.engine.reconfigure(config, build_registry(config))
            self.token = token
            self.last_reload_error = ""
            log_event(logger, logging.INFO, "reloaded", rules=len(config.rules))
            return ReloadOutcome(200)


@dataclass(frozen=True)
class ReloadOutcome:
    """How a reload ended: 200 applied, 409 refused (it would weaken authentication), 500 invalid file."""

    status: int
    error: str = ""
    details: str = ""


def weakened_authentication(
    old: RemediatorConfig, old_token: str | None, new: RemediatorConfig, new_token: str | None
) -> str | None:
    """Say why a new config would remove or weaken the running one's authentication, or None when it does not.
    A changed (rotated) token is not weaker; no token where there was one, or allow_unauthenticated turned on, is."""
    if old_token is not None and new_token is None:
        return (
            "the new configuration has no webhook token (webhook_token, webhook_token_file or "
            "TRADEOPS_WEBHOOK_TOKEN) and the running one has: a reload never turns authentication off"
        )
    if new.allow_unauthenticated and not old.allow_unauthenticated:
        return "allow_unauthenticated would change from false to true: a reload never weakens authentication"
    if new_token is None and not new.allow_unauthenticated:
        return "the new configuration has no webhook token and allow_unauthenticated is false"
    return None


LIFECYCLE = web.AppKey("lifecycle", bool)
REMEDIATOR = web.AppKey("remediator", Remediator)


def authorized(request: web.Request) -> bool:
    """Check the bearer token in constant time; no configured token means no check. An empty or blank given
    token is never accepted."""
    token = request.app[REMEDIATOR].token
    header = request.headers.get("Authorization")
    if header is None:
        return token is None
    scheme, _, given = header.partition(" ")
    bearer = scheme.lower() == "bearer"
    if bearer and not given.strip():
        return False
    if token is None:
        return True
    return bearer and hmac.compare_digest(given.encode(), token.encode())


def _answer(request: web.Request, response: web.Response) -> web.Response:
    request.app[REMEDIATOR].engine.metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def webhook(request: web.Request) -> web.Response:
    """POST /webhook: authenticate, bound, validate, record durably, enqueue, then answer (never after acting).
    Workers wait for the call to be answered before deciding (within the engine's gate)."""
    with request.app[REMEDIATOR].engine.accepting():
        return await _webhook(request)


async def _webhook(request: web.Request) -> web.Response:
    remediator = request.app[REMEDIATOR]
    engine = remediator.engine
    if not authorized(request):
        return _answer(request, json_error(401, "missing or invalid bearer token"))
    limit = remediator.config.limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _answer(request, json_error(413, f"body larger than {limit} bytes"))
    if request.content_type != "application/json":
        return _answer(request, json_error(415, "content type must be application/json"))
    body = await read_limited(request.content, limit)
    if len(body) > limit:
        return _answer(request, json_error(413, f"body larger than {limit} bytes"))
    try:
        payload = parse_payload(body)
    except ValidationError as error:
        details = [str(d) for d in validation_details(error)][:20]
        return _answer(request, json_error(422, "not an Alertmanager webhook payload (version 4)", details=details))
    alerts = payload["alerts"]
    if not engine.has_room(len(alerts)):
        return _answer(request, json_error(503, "work queue full; retry later"))
    try:
        # The payload as received (compressed when large), once: every alert in it is on record before the
        # 2xx, and resumed after a restart.
        stored = pack(body)
        inbox_id, received_at = await engine.store.receive(stored, len(alerts))
    except AuditUnavailableError as error:
        log_event(logger, logging.ERROR, "audit_unavailable", error=str(error))
        return _answer(request, json_error(503, "audit store unavailable; nothing was recorded, retry later"))
    engine.queue.put_payload(inbox_id, received_at, stored, len(alerts))
    firing = operator.countOf(map(STATUS, alerts), "firing")
    engine.metrics.received_firing.inc(firing)
    engine.metrics.received_resolved.inc(len(alerts) - firing)
    engine.metrics.queue_depth.set(engine.queue.qsize())
    truncated = payload.get("truncatedAlerts", 0)
    if truncated:
        engine.metrics.truncated_alerts.inc(truncated)
        log_event(logger, logging.WARNING, "truncated_alerts", group=payload.get("groupKey", ""), count=truncated)
    try:
        await engine.state.ping()
    except StateUnavailableError as error:
        # Recorded and queued: the workers fail closed and escalate. 503 makes Alertmanager send again, so
        # the alerts get their real decision once the state is back.
        log_event(logger, logging.ERROR, "state_unavailable", error=str(error))
        return _answer(request, json_error(503, "state backend unavailable: recorded and escalated, no action taken"))
    return _answer(request, web.json_response({"accepted": len(alerts), "truncated": truncated}))


async def remediations(request: web.Request) -> web.Response:
    """GET /api/v1/remediations?limit=N: the audit trail, newest first (authenticated)."""
    if not authorized(request):
        return json_error(401, "missing or invalid bearer token")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return json_error(400, "limit must be an integer")
    if not 1 <= limit <= 10_000:
        return json_error(400, "limit must be from 1 to 10000")
    entries = await request.app[REMEDIATOR].engine.store.recent(limit)
    return web.json_response({"remediations": entries}, dumps=lambda data: json.dumps(data, ensure_ascii=False))


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the remediator's own metrics."""
    engine = request.app[REMEDIATOR].engine
    with contextlib.suppress(StateUnavailableError):  # the gauge keeps its last value while Redis is away
        engine.metrics.budget_remaining.set(await engine.state.budget_remaining(engine.config.limits.actions_per_hour))
    return metrics_response(engine.metrics.registry)


async def ready(request: web.Request) -> web.Response:
    """GET /-/ready: 200 while the work queue has room, else 503."""
    if not request.app[REMEDIATOR].engine.has_room(1):
        return web.Response(status=503, text="Work queue full.\n")
    return web.Response(text="Ready.\n")


async def reload(request: web.Request) -> web.Response:
    """POST /-/reload: 403 unless --web.enable-lifecycle, then 401 without the token; reload rules and bounds,
    keeping all state; 409 when the file would weaken authentication, 500 with located errors when invalid."""
    if not request.app[LIFECYCLE]:
        return json_error(403, "Lifecycle API is not enabled.")
    if not authorized(request):
        return json_error(401, "missing or invalid bearer token")
    outcome = await request.app[REMEDIATOR].reload()
    if outcome.status != 200:
        return json_error(outcome.status, outcome.error, details=outcome.details.splitlines())
    return web.json_response({"status": "reloaded"})


def build_app(remediator: Remediator, enable_lifecycle: bool = False) -> web.Application:
    """Build the remediator's aiohttp application; the engine starts and stops with it. POST /-/reload answers
    403 unless enable_lifecycle (--web.enable-lifecycle)."""
    app = web.Application(client_max_size=remediator.config.limits.max_body_bytes + 1)
    app[REMEDIATOR] = remediator
    app[LIFECYCLE] = enable_lifecycle

    async def engine_lifecycle(app: web.Application) -> AsyncIterator[None]:
        engine = app[REMEDIATOR].engine
        await engine.start()
        yield
        await engine.stop()
        await engine.registry.close()
        await engine.outbox.close()
        await engine.state.close()
        await engine.store.close()

    app.cleanup_ctx.append(engine_lifecycle)
    app.router.add_post("/webhook", webhook)
    app.router.add_get("/api/v1/remediations", remediations)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app
