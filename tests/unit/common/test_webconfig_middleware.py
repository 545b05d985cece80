"""The web-config middlewares on a real aiohttp app: configured headers on every answer (errors included), and
basic auth that is required (the exporter: 401 without a valid user, /-/healthy open) or marks the user for the
handlers (the remediator: wrong credentials 401, none passed on)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from common.webconfig import WebConfig, web_config_middlewares, web_user
from tests.webconfig_helpers import bcrypt_hash

HASH = bcrypt_hash("s3cret")
# common/webconfig.py stores the user under a str request key; aiohttp 3.14 warns (once per process) to use a
# web.RequestKey, and under filterwarnings=error the first authenticated request of a test run would answer 500.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def who(request: web.Request) -> web.Response:
    return web.json_response({"user": web_user(request)})


async def missing(_: web.Request) -> web.Response:
    raise web.HTTPNotFound(text="no such page")


async def client(
    aiohttp_client: AiohttpClient, config: dict[str, Any] | None, *, required: bool
) -> TestClient[Any, Any]:
    web_config = WebConfig.model_validate(config) if config is not None else None
    app = web.Application(middlewares=web_config_middlewares(web_config, required=required))
    app.router.add_get("/metrics", who)
    app.router.add_get("/-/healthy", who)
    app.router.add_get("/gone", missing)
    return await aiohttp_client(app)


def test_no_web_config_means_no_middleware() -> None:
    assert web_config_middlewares(None, required=True) == []
    assert web_config_middlewares(WebConfig(), required=True) == []


async def test_configured_headers_are_on_answers_and_on_errors(aiohttp_client: AiohttpClient) -> None:
    headers = {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
    c = await client(aiohttp_client, {"http_server_config": {"headers": headers}}, required=True)
    for path, status in (("/metrics", 200), ("/gone", 404), ("/not-routed", 404)):
        response = await c.get(path)
        assert response.status == status
        assert {name: response.headers.get(name) for name in headers} == headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong"),
        basic("mallory", "s3cret"),
        basic("alice", ""),
        basic("", "s3cret"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},
        {"Authorization": "Bearer s3cret"},
    ],
)
async def test_required_basic_auth_refuses_anything_but_a_valid_user(
    aiohttp_client: AiohttpClient, headers: dict[str, str]
) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": HASH}}, required=True)
    response = await c.get("/metrics", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Basic"


async def test_required_basic_auth_lets_a_valid_user_in_and_names_them(aiohttp_client: AiohttpClient) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": HASH}}, required=True)
    response = await c.get("/metrics", headers=basic("alice", "s3cret"))
    assert (response.status, await response.json()) == (200, {"user": "alice"})


async def test_liveness_stays_open_under_required_basic_auth(aiohttp_client: AiohttpClient) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": HASH}}, required=True)
    response = await c.get("/-/healthy")
    assert (response.status, await response.json()) == (200, {"user": None})


async def test_optional_basic_auth_passes_requests_without_credentials_unmarked(aiohttp_client: AiohttpClient) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": HASH}}, required=False)
    response = await c.get("/metrics")
    assert (response.status, await response.json()) == (200, {"user": None})
    bearer = await c.get("/metrics", headers={"Authorization": "Bearer token"})
    assert (bearer.status, await bearer.json()) == (200, {"user": None})


async def test_optional_basic_auth_refuses_wrong_credentials_and_marks_a_valid_user(
    aiohttp_client: AiohttpClient,
) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": HASH}}, required=False)
    assert (await c.get("/metrics", headers=basic("alice", "wrong"))).status == 401
    assert (await c.get("/metrics", headers={"Authorization": "Basic %%%"})).status == 401
    response = await c.get("/metrics", headers=basic("alice", "s3cret"))
    assert (response.status, await response.json()) == (200, {"user": "alice"})


async def test_a_password_with_colons_is_the_rest_after_the_first(aiohttp_client: AiohttpClient) -> None:
    c = await client(aiohttp_client, {"basic_auth_users": {"alice": bcrypt_hash("a:b:c")}}, required=True)
    assert (await c.get("/metrics", headers=basic("alice", "a:b:c"))).status == 200
