"""The read API: GET /api/v1/incidents, /api/v1/incidents/{id} and /api/v1/remediations (filters, cursor
pagination) and the OpenAPI document describing them at /api/v1/openapi.json. Behind the webhook's bearer token."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from common.web import json_error
from remediator.api.openapi import document
from remediator.api.views import (
    QueryError,
    audit_filter,
    incident_detail,
    incident_filter,
    list_incidents,
    list_remediations,
    readable,
)
from remediator.runtime.engine import Engine


@dataclass(frozen=True)
class ReadAccess:
    """What the read API and the console take from the running service: its engine, its bearer-token check, the
    token in force (it changes on a reload) and whether it is served over TLS."""

    engine: Callable[[web.Request], Engine]
    authorized: Callable[[web.Request], bool]
    token: Callable[[web.Request], str | None]
    tls: Callable[[web.Request], bool]


READ_ACCESS = web.AppKey("read_access", ReadAccess)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False))


async def incidents(request: web.Request) -> web.Response:
    """GET /api/v1/incidents: incidents, open first, then by last update; filters and a cursor."""
    access = request.app[READ_ACCESS]
    if not access.authorized(request):
        return json_error(401, "missing or invalid bearer token")
    try:
        wanted = incident_filter(request.query)
    except QueryError as error:
        return json_error(400, str(error))
    engine = access.engine(request)
    store, _ = readable(engine.store)
    items, cursor = await list_incidents(store, engine.config, wanted)
    return _json({"incidents": items, "next_cursor": cursor})


async def incident(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id}: one incident with its timeline and pages, or 404."""
    access = request.app[READ_ACCESS]
    if not access.authorized(request):
        return json_error(401, "missing or invalid bearer token")
    engine = access.engine(request)
    store, outbox = readable(engine.store)
    detail = await incident_detail(store, outbox, engine.config, request.match_info["id"])
    if detail is None:
        return json_error(404, "no such incident")
    return _json(detail)


async def remediations(request: web.Request) -> web.Response:
    """GET /api/v1/remediations: the audit trail, newest first; filters and a cursor (authenticated)."""
    access = request.app[READ_ACCESS]
    if not access.authorized(request):
        return json_error(401, "missing or invalid bearer token")
    try:
        query = audit_filter(request.query)
    except QueryError as error:
        return json_error(400, str(error))
    store, _ = readable(access.engine(request).store)
    entries, cursor = await list_remediations(store, query)
    return _json({"remediations": entries, "next_cursor": cursor})


async def openapi(_request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json: the OpenAPI 3 document of the API (public: it holds no data)."""
    return _json(document())


def add_read_api(app: web.Application, access: ReadAccess) -> None:
    """Serve the read API and its OpenAPI document on the app."""
    app[READ_ACCESS] = access
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/incidents/{id}", incident)
    app.router.add_get("/api/v1/remediations", remediations)
    app.router.add_get("/api/v1/openapi.json", openapi)
