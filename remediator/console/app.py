"""The console for the people on call, served by the remediator under /console: login (the webhook token or a
web-config basic-auth user), incidents, an incident's timeline, approvals waiting, rules and explain.
Server-rendered (jinja2, autoescaped). Nothing here reaches an action but approving a pending step."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from pydantic import ValidationError

from common.webconfig import BasicAuth, WebConfig
from remediator.api.read import READ_ACCESS
from remediator.api.views import (
    SHOWN_STATES,
    QueryError,
    ReadableStore,
    incident_detail,
    incident_filter,
    list_incidents,
    list_remediations,
    millis,
    readable,
)
from remediator.audit.reads import AuditQuery
from remediator.console.approvals import DECISIONS, RESULTS, approver, live_pending, pending_approvals, precise
from remediator.console.limits import SHOWN, by_rule, limits_left
from remediator.console.sessions import Session, Sessions
from remediator.intake.payload import WebhookAlert, parse_payload
from remediator.runtime.playbook import parse_approval_id
from remediator.state.base import LockLostError, StateUnavailableError

COOKIE = "tradeops_session"
LOGIN_COOKIE = "tradeops_login"
PREFIX = "/console"
IGNORED_SCAN = 10_000  # audit entries the incident list looks through for ignored alerts
SESSIONS = web.AppKey("console_sessions", Sessions)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
USERS = web.AppKey("console_users", BasicAuth)  # the web config's basic-auth users, when it has any
MAX_USER = 128
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
Page = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def safe_url(value: object) -> str | None:
    """The URL when it is http(s), else None: a javascript: or data: URL is never made a link."""
    text = str(value or "").strip()
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    return text if scheme in {"http", "https"} else None


def utc_ms(value: object) -> str:
    """A time as 'YYYY-MM-DD HH:MM:SS.mmm UTC' ('' for none)."""
    text = millis(value) if isinstance(value, dt.datetime | str | int | float) else None
    return text.replace("T", " ").replace("Z", " UTC") if text else ""


def environment() -> jinja2.Environment:
    """The templates, autoescaped (hostile labels render as text)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("remediator.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["safe_url"] = safe_url
    env.filters["utc_ms"] = utc_ms
    env.filters["iso_ms"] = millis
    env.filters["dom_id"] = lambda value: "a" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
    env.filters["quote"] = lambda value: urllib.parse.quote(str(value), safe="")
    env.filters["state_label"] = lambda value: str(value).replace("waiting_approval", "waiting for approval")
    return env


def render(request: web.Request, name: str, session: Session | None, status: int = 200, **context: Any) -> web.Response:
    """A page from its template, with the session's CSRF token and the security headers."""
    html = (
        request.app[TEMPLATES]
        .get_template(name)
        .render(csrf=session.csrf if session else "", logged_in=session is not None, prefix=PREFIX, **context)
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _token(request: web.Request) -> str | None:
    return request.app[READ_ACCESS].token(request)


def _session(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE), _token(request))


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page that needs a session: without one, a redirect to the login."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = _session(request)
        if session is None:
            raise web.HTTPSeeOther(f"{PREFIX}/login?next={urllib.parse.quote(request.path_qs, safe='')}")
        return await handler(request, session)

    return wrapped


def form_action(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A POST that needs a session and that session's CSRF token; 403 (and nothing done) otherwise."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = _session(request)
        if session is None:
            return web.Response(status=403, text="No session: log in again.\n", headers=HEADERS)
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            return web.Response(status=403, text="Missing or wrong CSRF token.\n", headers=HEADERS)
        return await handler(request, session)

    return wrapped


def _next(request: web.Request, value: object) -> str:
    target = str(value or "")
    return target if target.startswith(f"{PREFIX}/") and not target.startswith("//") else f"{PREFIX}/incidents"


async def login_form(request: web.Request) -> web.Response:
    """GET /console/login: the form (the webhook token), with a login CSRF token bound to a cookie."""
    return _login(request, "", 200, request.query.get("next"))


def _login(request: web.Request, error: str, status: int, target: object) -> web.Response:
    sessions = request.app[SESSIONS]
    csrf = sessions.login_csrf()
    response = render(
        request,
        "login.html",
        None,
        status,
        login_csrf=csrf,
        error=error,
        next=_next(request, target),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        csrf.partition(".")[0],
        max_age=600,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path=PREFIX,
    )
    return response


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[READ_ACCESS].tls(request)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /console/login: a session for the webhook token in force (constant-time check) or for a web-config
    basic-auth user whose password matches its bcrypt hash (the same check as the API's); else the form again."""
    form = await request.post()
    csrf = str(form.get("csrf", ""))
    sessions = request.app[SESSIONS]
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not sessions.login_csrf_valid(csrf) or not nonce or not hmac.compare_digest(nonce, csrf.partition(".")[0]):
        return web.Response(status=403, text="Missing or wrong CSRF token: reload the login page.\n", headers=HEADERS)
    given = str(form.get("token", ""))
    name = str(form.get("user", "")).strip()
    token = _token(request)
    users = request.app.get(USERS)
    if name:
        printable = len(name) <= MAX_USER and name.isprintable()
        if users is None or not printable or not given or not await users.check(name, given):
            return _login(request, "That user name and password are not accepted.", 401, form.get("next"))
        user = name
    else:
        unguarded = token is None and users is None  # no token and no users: the API has no check either
        matches = token is not None and hmac.compare_digest(given.encode(), token.encode())
        if not given.strip() or not (matches or unguarded):
            return _login(request, "That token is not the remediator's webhook token.", 401, form.get("next"))
        user = "token"
    session = sessions.create(token, user)
    response = web.HTTPSeeOther(_next(request, form.get("next")))
    response.set_cookie(
        COOKIE,
        session.sid,
        max_age=int(sessions.seconds),
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path=PREFIX,
    )
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    raise response


async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    """POST /console/logout: end the session."""
    request.app[SESSIONS].end(session.sid)
    response = web.HTTPSeeOther(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


async def incidents(request: web.Request, session: Session) -> web.Response:
    """GET /console/incidents: open incidents first, then recent, with the filters; ignored alerts beside."""
    access = request.app[READ_ACCESS]
    engine = access.engine(request)
    store, _ = readable(engine.store)
    query = {k: v for k, v in request.query.items() if v}
    error = ""
    items: list[dict[str, Any]] = []
    cursor = None
    try:
        items, cursor = await list_incidents(store, engine.config, incident_filter(query))
    except QueryError as problem:
        error = str(problem)
    ignored = await recently_ignored(store)
    waiting = await pending_approvals(store, engine.config)
    next_query = urllib.parse.urlencode({**query, "cursor": cursor}) if cursor else ""
    return render(
        request,
        "incidents.html",
        session,
        status=400 if error else 200,
        incidents=items,
        ignored=ignored,
        waiting=waiting,
        filters=query,
        states=SHOWN_STATES,
        rules=[rule.name for rule in engine.config.rules],
        error=error,
        next_query=next_query,
        refresh="incident-list" if "cursor" not in query else "",
    )


async def recently_ignored(store: ReadableStore) -> list[dict[str, Any]]:
    """The latest alerts an ignore rule ignored, among the newest audit entries only (a bounded read on every
    refresh, however long the trail)."""
    newest = await store.audit_page(AuditQuery(limit=1))
    if not newest:
        return []
    above = int(newest[0]["id"]) - IGNORED_SCAN
    query = AuditQuery(limit=20, decision="ignored", above_id=above)
    entries, _ = await list_remediations(store, query)
    return entries


async def incident(request: web.Request, session: Session) -> web.Response:
    """GET /console/incidents/{id}: the incident's timeline, its pages and every delivery attempt."""
    engine = request.app[READ_ACCESS].engine(request)
    store, outbox = readable(engine.store)
    detail = await incident_detail(store, outbox, engine.config, request.match_info["id"])
    if detail is None:
        return render(request, "missing.html", session, status=404, key=request.match_info["id"])
    return render(request, "incident.html", session, detail=detail, events=timeline(detail))


def timeline(detail: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The incident's audit entries and pages, merged by time, each with a kind for its row."""
    events: list[dict[str, Any]] = [
        {"at": entry["at"], "kind": entry["event"], "entry": entry, "page": None} for entry in detail["timeline"]
    ]
    for record in detail["pages"]:
        events.append({"at": record["created_at"], "kind": f"page_{record['kind']}", "entry": None, "page": record})
    return sorted(events, key=lambda event: str(event["at"]))


async def rules(request: web.Request, session: Session) -> web.Response:
    """GET /console/rules: each rule's matchers, steps and limits, and what is left of them, read from the state
    backend (cooldowns running, bucket tokens, the hourly budget, breakers); dry run. It changes nothing."""
    engine = request.app[READ_ACCESS].engine(request)
    left = await limits_left(engine.state, engine.config)
    return render(
        request,
        "rules.html",
        session,
        rules=engine.config.rules,
        limits=engine.config.limits,
        dry_run=engine.config.dry_run,
        left=left,
        live=by_rule(left),
        breaker=engine.config.circuit_breaker,
        shown=SHOWN,
    )


async def explain_form(request: web.Request, session: Session) -> web.Response:
    """GET /console/explain: the form to paste an Alertmanager payload into."""
    return render(request, "explain.html", session, payload="", plans=None, errors=[])


async def explain(request: web.Request, session: Session) -> web.Response:
    """POST /console/explain: the plan for each alert of the pasted payload (engine.explain: no side effects)."""
    engine = request.app[READ_ACCESS].engine(request)
    text = str((await request.post()).get("payload", ""))
    limit = engine.config.limits.max_body_bytes
    if len(text.encode()) > limit:
        return render(request, "explain.html", session, 413, payload="", plans=None, errors=[f"over {limit} bytes"])
    try:
        document = parse_payload(text)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)]
        return render(request, "explain.html", session, 400, payload=text, plans=None, errors=problems[:20])
    plans = []
    for raw in document["alerts"]:
        alert = WebhookAlert.from_document(raw)
        plans += [plan.describe(alert) for plan in await engine.explain(alert)]
    return render(request, "explain.html", session, payload=text, plans=plans, errors=[])


async def approvals(request: web.Request, session: Session) -> web.Response:
    """GET /console/approvals: every step waiting for a human: what it would do, why, its evidence, its deadline,
    and approve and deny buttons; the list refreshes itself (with the script), so a step decided elsewhere or past
    its deadline leaves it."""
    engine = request.app[READ_ACCESS].engine(request)
    store, _ = readable(engine.store)
    waiting = await pending_approvals(store, engine.config)
    return render(request, "approvals.html", session, waiting=waiting, refresh="approval-list")


async def confirm(request: web.Request, session: Session) -> web.Response:
    """GET /console/approvals/{id}?decision=approve|deny: what would be approved or denied, and the form that
    confirms it; a forged, used or expired id says so and offers nothing."""
    decision = request.query.get("decision", "approve")
    if decision not in DECISIONS:
        decision = "approve"
    try:
        view, why = await live_pending(request, request.match_info["id"])
    except StateUnavailableError:
        view, why = None, "state_unavailable"
    status = 200 if view is not None else 404 if why == "unknown" else 409
    message = RESULTS.get(why, "The remediator's state cannot be read now: try again.")
    return render(request, "confirm.html", session, status, item=view, decision=decision, message=message)


async def decide(request: web.Request, session: Session) -> web.Response:
    """POST /console/approvals/{id} (session and CSRF checked by form_action): approve or deny the pending step
    through the engine, recorded as console:<user>; the page says what came of it."""
    decision = (await request.post()).get("decision")
    if decision not in DECISIONS:
        return render(request, "decided.html", session, 400, result="", message="Choose approve or deny.")
    engine = request.app[READ_ACCESS].engine(request)
    public_id = request.match_info["id"]
    try:
        result = await engine.decide_approval(public_id, decision == "approve", approver(session))
        result = await precise(engine.state, public_id, result)
    except StateUnavailableError:
        return render(request, "decided.html", session, 503, result="", message="The state cannot be read now.")
    except LockLostError:
        message = "Another replica took this incident over while deciding: see its timeline."
        return render(request, "decided.html", session, 409, result="", message=message, key=_incident_of(public_id))
    status = 200 if result in {"approved", "denied"} else 404 if result == "unknown" else 409
    key = _incident_of(public_id) if result in {"approved", "denied", "expired"} else None
    return render(request, "decided.html", session, status, result=result, message=RESULTS[result], key=key)


def _incident_of(public_id: str) -> str | None:
    parsed = parse_approval_id(public_id)
    return parsed[0] if parsed is not None else None


async def approval_link(request: web.Request) -> web.Response:
    """GET /approvals/{id}?decision=…: the link a page carries, sent on to its confirmation page in the console
    (which asks for a login first); the id is only quoted into the path, the decision only approve or deny."""
    decision = request.query.get("decision")
    target = f"{PREFIX}/approvals/{urllib.parse.quote(request.match_info['id'], safe='')}"
    if decision in DECISIONS:
        target += f"?decision={decision}"
    raise web.HTTPSeeOther(target)


async def static(request: web.Request) -> web.Response:
    """GET /console/static/{name}: the console's stylesheet and script, from the package."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound
    body = resources.files("remediator.console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})


async def home(_request: web.Request) -> web.Response:
    """GET /console: the incidents."""
    raise web.HTTPSeeOther(f"{PREFIX}/incidents")


def add_console(app: web.Application, web_config: WebConfig | None = None) -> None:
    """Serve the console under /console (the read API's access must be set up first: add_read_api), and the
    approval links' /approvals/{id}; the web config's basic-auth users may log in as well as the webhook token."""
    app[SESSIONS] = Sessions()
    if web_config is not None and web_config.basic_auth_users:
        app[USERS] = BasicAuth(web_config.basic_auth_users)
    app[TEMPLATES] = environment()
    app.router.add_get(PREFIX, home)
    app.router.add_get(f"{PREFIX}/", home)
    app.router.add_get(f"{PREFIX}/login", login_form)
    app.router.add_post(f"{PREFIX}/login", login)
    app.router.add_post(f"{PREFIX}/logout", form_action(logout))
    app.router.add_get(f"{PREFIX}/incidents", page(incidents))
    app.router.add_get(f"{PREFIX}/incidents/{{id}}", page(incident))
    app.router.add_get(f"{PREFIX}/approvals", page(approvals))
    app.router.add_get(f"{PREFIX}/approvals/{{id}}", page(confirm))
    app.router.add_post(f"{PREFIX}/approvals/{{id}}", form_action(decide))
    app.router.add_get("/approvals/{id}", approval_link)
    app.router.add_get(f"{PREFIX}/rules", page(rules))
    app.router.add_get(f"{PREFIX}/explain", page(explain_form))
    app.router.add_post(f"{PREFIX}/explain", form_action(explain))
    app.router.add_get(f"{PREFIX}/static/{{name}}", static)
