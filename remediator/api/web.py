"""The remediator's HTTP API: POST /webhook, the read API (remediator/api/read.py), metrics, health and reload."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from common.config import ConfigError
from common.logs import log_event
from common.web import healthy, json_error, metrics_response, read_limited
from common.webconfig import WebConfig, web_config_middlewares, web_user
from remediator.api.read import ReadAccess, add_read_api
from remediator.app import build_registry, load_checked
from remediator.config import RemediatorConfig
from remediator.console.app import add_console
from remediator.console.approvals import RESULTS, precise
from remediator.intake.accept import accept
from remediator.runtime.engine import Engine
from remediator.state.base import LockLostError, StateUnavailableError

logger = logging.getLogger("remediator.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
            await self.engine.reconfigure(config, build_registry(config, self.engine.http))
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
WEB_BASIC_AUTH = web.AppKey("web_basic_auth", bool)  # whether the web config has basic_auth_users


def authorized(request: web.Request) -> bool:
    """Accept a basic-auth user the web config's middleware authenticated, or the bearer token (constant-time
    compare); with neither a token nor basic_auth_users configured there is no check. An empty or blank given
    token is never accepted."""
    if web_user(request) is not None:
        return True
    token = request.app[REMEDIATOR].token
    unguarded = token is None and not request.app[WEB_BASIC_AUTH]
    header = request.headers.get("Authorization")
    if header is None:
        return unguarded
    scheme, _, given = header.partition(" ")
    bearer = scheme.lower() == "bearer"
    if bearer and not given.strip():
        return False
    if token is None:
        return unguarded
    return bearer and hmac.compare_digest(given.encode(), token.encode())


@web.middleware
async def count_webhook_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer of POST /webhook by its HTTP status."""
    response = await handler(request)
    if request.path == "/webhook":
        request.app[REMEDIATOR].engine.metrics.webhook_requests.labels(str(response.status)).inc()
    return response


async def webhook(request: web.Request) -> web.Response:
    """POST /webhook: authenticate and bound the body here; accept() validates, records and queues, then this
    answers (never after acting)."""
    remediator = request.app[REMEDIATOR]
    if not authorized(request):
        return json_error(401, "missing or invalid bearer token")
    limit = remediator.config.limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, f"body larger than {limit} bytes")
    if request.content_type != "application/json":
        return json_error(415, "content type must be application/json")
    body = await read_limited(request.content, limit)
    if len(body) > limit:
        return json_error(413, f"body larger than {limit} bytes")
    outcome = await accept(remediator.engine, remediator.engine.metrics, body)
    return web.json_response(outcome.body, status=outcome.status)


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


APPROVAL_STATUS = {
    "approved": 200,
    "denied": 200,
    "unknown": 404,
    "not_pending": 409,
    "expired": 409,
    "resolved": 409,
    "busy": 409,
}


async def approvals(request: web.Request) -> web.Response:
    """POST /api/v1/approvals/{id}: approve or deny a step waiting for a human (JSON `{"decision": "approve" |
    "deny", "user": "..."}`, authenticated); recorded with who and when; a link used twice, forged, expired or
    of a resolved incident changes nothing."""
    basic_user = web_user(request)
    if basic_user is None and request.app[REMEDIATOR].token is None:
        # No token and no web-config user to authenticate with: nobody may approve a step (allow_unauthenticated
        # opens the webhook only).
        return json_error(403, "approvals need authentication: configure webhook_token or basic_auth_users")
    if not authorized(request):
        return json_error(401, "missing or invalid bearer token")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "body must be JSON")
    if not isinstance(body, dict) or body.get("decision") not in {"approve", "deny"}:
        return json_error(400, 'decision must be "approve" or "deny"')
    user = body.get("user", "")
    if not isinstance(user, str) or len(user) > 128 or not user.isprintable():
        return json_error(400, "user must be a string of at most 128 printable characters")
    # Who is recorded: the authenticated web-config user when there is one (the body's user only as a note).
    who = f"basic:{basic_user}" if basic_user is not None else "token"
    who += f":{user}" if user else ""
    engine = request.app[REMEDIATOR].engine
    public_id = request.match_info["id"]
    try:
        outcome = await engine.decide_approval(public_id, body["decision"] == "approve", who)
        outcome = await precise(engine.state, public_id, outcome)
    except StateUnavailableError as error:
        log_event(logger, logging.ERROR, "approval_failed", error=str(error))
        return json_error(503, "the state backend is unavailable: the decision may not be recorded; try again")
    except LockLostError:
        return json_error(409, "another replica took this incident over while deciding: see its timeline")
    status = APPROVAL_STATUS[outcome]
    answer = {"result": outcome} if status == 200 else {"result": outcome, "error": RESULTS[outcome]}
    return web.json_response(answer, status=status)


CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def lifecycles(engine: Engine) -> list[CleanupContext]:
    """One cleanup context per resource, in the order they open (they close in the reverse): the shared HTTP
    session, the audit store, the state backend, the outbox's sender, then the engine's workers and timers with
    the actions they use."""

    async def http_session(_app: web.Application) -> AsyncIterator[None]:
        yield
        await engine.http.close()

    async def audit_store(_app: web.Application) -> AsyncIterator[None]:
        await engine.store.open()
        yield
        await engine.store.close()

    async def state_backend(_app: web.Application) -> AsyncIterator[None]:
        await engine.state.open()
        yield
        await engine.state.close()

    async def outbox(_app: web.Application) -> AsyncIterator[None]:
        await engine.outbox.start()
        yield
        await engine.outbox.close()

    async def workers(_app: web.Application) -> AsyncIterator[None]:
        try:
            await engine.start()
            yield
        finally:
            try:
                await engine.stop()
            finally:
                await engine.registries.close()

    return [http_session, audit_store, state_backend, outbox, workers]


def build_app(
    remediator: Remediator, enable_lifecycle: bool = False, web_config: WebConfig | None = None
) -> web.Application:
    """Build the remediator's aiohttp application; the engine starts and stops with it. POST /-/reload answers
    403 unless enable_lifecycle (--web.enable-lifecycle). A basic-auth user of web_config is accepted wherever
    the bearer token is; wrong Basic credentials are 401 on every endpoint but /-/healthy."""
    app = web.Application(
        client_max_size=remediator.config.limits.max_body_bytes + 1,
        middlewares=[count_webhook_answers, *web_config_middlewares(web_config, required=False)],
    )
    app[REMEDIATOR] = remediator
    app[WEB_BASIC_AUTH] = web_config is not None and bool(web_config.basic_auth_users)
    app[LIFECYCLE] = enable_lifecycle

    app.cleanup_ctx.extend(lifecycles(remediator.engine))
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/api/v1/approvals/{id}", approvals)
    read_access = ReadAccess(
        lambda r: r.app[REMEDIATOR].engine,
        authorized,
        lambda r: r.app[REMEDIATOR].token,
        lambda _r: web_config is not None and web_config.tls_server_config.enabled,  # served over TLS
    )
    add_read_api(app, read_access)
    add_console(app, web_config)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app
