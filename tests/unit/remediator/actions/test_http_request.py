"""http_request's answers against a loopback platform: an expected status succeeds, a redirect is never
followed, 5xx and no listener are transient, any other status permanent (with the body's start); and the
actions that touch nothing (log, escalate, ignore) say what they did without changing anything."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.http import SharedSession
from common.web import free_port
from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.actions.builtin import (
    EscalateAction,
    EscalateParams,
    HttpRequestAction,
    HttpRequestParams,
    IgnoreAction,
    IgnoreParams,
    LogAction,
    LogParams,
)


@pytest.fixture
async def http() -> AsyncIterator[SharedSession]:
    session = SharedSession("tradeops-test")
    yield session
    await session.close()


@pytest.fixture
async def platform(aiohttp_server: AiohttpServer) -> tuple[str, list[str]]:
    """/status/<n> answers n; /redirect sends to /admin; every path asked for is recorded."""
    seen: list[str] = []

    async def status(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path} {await request.text()}")
        return web.Response(status=int(request.match_info["code"]), text="x" * 5000)

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request.path)
        raise web.HTTPTemporaryRedirect("/admin")

    async def admin(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="admin")

    app = web.Application()
    app.router.add_route("*", "/platform/status/{code}", status)
    app.router.add_route("*", "/platform/redirect", redirect)
    app.router.add_route("*", "/admin", admin)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", seen


def request(base: str, http: SharedSession) -> HttpRequestAction:
    return HttpRequestAction((f"{base}/platform/",), http)


async def test_an_expected_status_succeeds_with_the_json_body_sent(
    platform: tuple[str, list[str]], http: SharedSession
) -> None:
    base, seen = platform
    params = HttpRequestParams(url=f"{base}/platform/status/{{code}}", json_body={"a": 1})
    result = await request(base, http).run(params, {"code": "202"})
    assert result.detail == f"POST {base}/platform/status/202 -> 202"
    assert seen == ['POST /platform/status/202 {"a": 1}']


async def test_a_redirect_is_never_followed(platform: tuple[str, list[str]], http: SharedSession) -> None:
    base, seen = platform
    with pytest.raises(PermanentActionError, match="answered 307"):
        await request(base, http).run(HttpRequestParams(url=f"{base}/platform/redirect"), {})
    assert seen == ["/platform/redirect"]


@pytest.mark.parametrize("code", [500, 502, 503])
async def test_a_server_error_is_transient_with_a_bounded_excerpt(
    platform: tuple[str, list[str]], http: SharedSession, code: int
) -> None:
    base, _ = platform
    with pytest.raises(TransientActionError, match=f"answered {code}") as caught:
        await request(base, http).run(HttpRequestParams(url=f"{base}/platform/status/{code}"), {})
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("code", [200, 404, 409])
async def test_a_status_not_expected_is_permanent(
    platform: tuple[str, list[str]], http: SharedSession, code: int
) -> None:
    base, _ = platform
    params = HttpRequestParams(url=f"{base}/platform/status/{code}", method="PUT", expect_status=(204,))
    with pytest.raises(PermanentActionError, match=f"PUT .* answered {code}"):
        await request(base, http).run(params, {})


async def test_no_listener_is_transient(http: SharedSession) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransientActionError, match="POST"):
        await request(base, http).run(HttpRequestParams(url=f"{base}/platform/status/200"), {})


async def test_an_unfilled_placeholder_is_refused_before_any_call(
    platform: tuple[str, list[str]], http: SharedSession
) -> None:
    base, seen = platform
    with pytest.raises(PermanentActionError, match="placeholder no declared label fills"):
        await request(base, http).run(HttpRequestParams(url=f"{base}/platform/status/{{code}}"), {})
    assert seen == []


async def test_log_escalate_and_ignore_change_nothing_and_say_so() -> None:
    logged = await LogAction().run(LogParams(message="noted"), {"service": "api"})
    escalated = await EscalateAction().run(EscalateParams(), {})
    ignored = await IgnoreAction().run(IgnoreParams(), {})
    assert [(r.detail, r.changed) for r in (logged, escalated, ignored)] == [
        ("noted", False),
        ("needs a human", False),
        ("ignored by configuration", False),
    ]
    assert EscalateAction.escalates
    assert not IgnoreAction.escalates
