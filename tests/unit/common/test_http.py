"""The shared HTTP session: one ClientSession per process, opened on first use with the service's User-Agent,
closed once; after close it is never reopened."""

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.http import SharedSession


async def test_every_caller_gets_the_same_session_sending_the_user_agent(aiohttp_server: AiohttpServer) -> None:
    async def agent(request: web.Request) -> web.Response:
        return web.Response(text=request.headers["User-Agent"])

    app = web.Application()
    app.router.add_get("/", agent)
    server = await aiohttp_server(app)
    shared = SharedSession("tradeops-test/1.0")
    try:
        assert shared.get() is shared.get()
        async with shared.get().get(f"http://127.0.0.1:{server.port}/") as response:
            assert await response.text() == "tradeops-test/1.0"
    finally:
        await shared.close()


async def test_a_closed_session_is_never_reopened() -> None:
    shared = SharedSession("t")
    session = shared.get()
    await shared.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        shared.get()


async def test_closing_is_idempotent_and_needs_no_session_opened() -> None:
    shared = SharedSession("t")
    await shared.close()
    await shared.close()
    with pytest.raises(RuntimeError, match="closed"):
        shared.get()
