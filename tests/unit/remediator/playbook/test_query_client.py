"""The Prometheus query client against loopback servers that misbehave: each failure is an answer that is not ok and
never holds, with its reason; nothing raises, nothing hangs past the client's timeout, no redirect is followed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.http import SharedSession
from common.web import free_port
from remediator.playbook.prometheus import PrometheusClient

VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "1"]}]}}


@pytest.fixture
async def http() -> AsyncIterator[SharedSession]:
    session = SharedSession("tradeops-test")
    yield session
    await session.close()


@pytest.fixture
async def fake(aiohttp_server: AiohttpServer) -> tuple[str, list[web.Request]]:
    seen: list[web.Request] = []

    async def query(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        mode = request.query["query"]
        if mode == "hang":
            await asyncio.sleep(30)
        if mode == "slow_body":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b'{"status": ')
            await asyncio.sleep(30)
        if mode == "500":
            return web.Response(status=500, text="internal error")
        if mode == "redirect":
            raise web.HTTPFound("/elsewhere")
        if mode == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if mode == "huge":
            return web.json_response({"status": "success", "pad": "x" * 50_000})
        if mode == "huge_chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(100):
                await response.write(b"x" * 1000)
            return response
        if mode == "bad_data":
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400)
        return web.json_response(VECTOR)

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response(VECTOR)

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    app.router.add_get("/elsewhere", elsewhere)
    server = await aiohttp_server(app)
    return str(server.make_url("/")), seen


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("hang", "timed out"),
        ("slow_body", "timed out"),
        ("500", "HTTP 500"),
        ("redirect", "redirect"),
        ("garbage", "not JSON"),
        ("huge", "larger than"),
        ("huge_chunked", "larger than"),
        ("bad_data", "bad_data"),
    ],
)
async def test_a_misbehaving_backend_is_not_ok_and_never_holds(
    fake: tuple[str, list[web.Request]], http: SharedSession, mode: str, reason: str
) -> None:
    base, seen = fake
    client = PrometheusClient(base, http, timeout_seconds=0.5, max_bytes=10_000)
    answer = await client.query(mode)
    assert (answer.ok, answer.holds) == (False, False)
    assert reason in answer.error
    assert all(request.path != "/elsewhere" for request in seen)


async def test_a_refused_connection_is_not_ok(http: SharedSession) -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", http, timeout_seconds=2)
    answer = await client.query("vector(1)")
    assert (answer.ok, answer.holds) == (False, False)
    assert "query failed" in answer.error


async def test_a_closed_session_is_not_ok_rather_than_raising() -> None:
    http = SharedSession("tradeops-test")
    await http.close()
    answer = await PrometheusClient("http://127.0.0.1:9", http).query("vector(1)")
    assert (answer.ok, answer.holds) == (False, False)


async def test_the_bearer_token_is_sent_and_never_appears_in_an_error(
    fake: tuple[str, list[web.Request]], http: SharedSession
) -> None:
    base, seen = fake
    client = PrometheusClient(base, http, bearer_token="s3cr3t-token", timeout_seconds=2)
    answer = await client.query("ok")
    assert (answer.ok, answer.holds) == (True, True)
    assert seen[-1].headers["Authorization"] == "Bearer s3cr3t-token"
    failed = await client.query("500")
    assert "s3cr3t" not in failed.error


async def test_credentials_in_the_base_url_never_appear_in_an_error(http: SharedSession) -> None:
    client = PrometheusClient(f"http://user:hunter2@127.0.0.1:{free_port()}", http, timeout_seconds=2)
    answer = await client.query("vector(1)")
    assert not answer.ok
    assert "hunter2" not in answer.error
