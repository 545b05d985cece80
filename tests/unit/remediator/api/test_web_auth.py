"""Who may call the remediator's guarded endpoints (bearer token compared in constant time, or a basic-auth user
the web config authenticated), and which reloads would weaken authentication and are refused."""

from __future__ import annotations

import types
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from common.webconfig import WEB_USER
from remediator.api.web import REMEDIATOR, WEB_BASIC_AUTH, Remediator, authorized, weakened_authentication
from remediator.config import RemediatorConfig

TOKEN = "s3cret-token"


def request(token: str | None, header: str | None, basic_auth: bool = False, user: str | None = None) -> web.Request:
    app = web.Application()
    app[REMEDIATOR] = cast(Remediator, types.SimpleNamespace(token=token))
    app[WEB_BASIC_AUTH] = basic_auth
    headers = {"Authorization": header} if header is not None else {}
    made = make_mocked_request("POST", "/webhook", headers=headers, app=app)
    if user is not None:
        made[WEB_USER] = user
    return made


def test_the_right_bearer_token_is_accepted_whatever_the_schemes_case() -> None:
    assert authorized(request(TOKEN, f"Bearer {TOKEN}"))
    assert authorized(request(TOKEN, f"bearer {TOKEN}"))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Bearer {TOKEN} ",
        f"Bearer  {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN.upper()}",
        f"Basic {TOKEN}",
        TOKEN,
        f"Token {TOKEN}",
        "Bearer s3cret-tokén",
    ],
)
def test_anything_but_the_exact_bearer_token_is_refused(header: str | None) -> None:
    assert not authorized(request(TOKEN, header))


@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
def test_a_user_the_basic_auth_middleware_authenticated_is_accepted_without_a_token() -> None:
    assert authorized(request(TOKEN, None, basic_auth=True, user="alice"))


def test_with_basic_auth_configured_a_request_without_credentials_is_refused() -> None:
    assert not authorized(request(None, None, basic_auth=True))
    assert not authorized(request(None, "Bearer anything", basic_auth=True))


def test_with_no_authentication_configured_there_is_no_check_but_an_empty_bearer_is_refused() -> None:
    assert authorized(request(None, None))
    assert authorized(request(None, "Bearer whatever"))
    assert not authorized(request(None, "Bearer "))


def config(**fields: Any) -> RemediatorConfig:
    return RemediatorConfig.model_validate(fields)


def test_a_rotated_token_is_not_weaker() -> None:
    assert weakened_authentication(config(), "old", config(), "new") is None


def test_removing_the_token_is_refused() -> None:
    reason = weakened_authentication(config(), "old", config(), None)
    assert reason is not None
    assert "never turns authentication off" in reason


def test_turning_allow_unauthenticated_on_is_refused_even_with_a_token() -> None:
    reason = weakened_authentication(config(), "old", config(allow_unauthenticated=True), "old")
    assert reason is not None
    assert "allow_unauthenticated would change from false to true" in reason


def test_a_config_with_no_token_and_no_allow_unauthenticated_is_refused() -> None:
    reason = weakened_authentication(config(allow_unauthenticated=True), None, config(), None)
    assert reason is not None
    assert "no webhook token and allow_unauthenticated is false" in reason


def test_adding_a_token_or_staying_unauthenticated_on_purpose_is_allowed() -> None:
    unauthenticated = config(allow_unauthenticated=True)
    assert weakened_authentication(unauthenticated, None, config(), "new") is None
    assert weakened_authentication(unauthenticated, None, unauthenticated, None) is None
