"""The http_request action's URL allowlist against hostile URLs and label values: the URL is normalised before the
prefix check, the check is made on path-segment boundaries, and the normalised URL is the one called."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.config import ConfigError
from common.http import SharedSession
from remediator.actions.base import PermanentActionError
from remediator.actions.builtin import HttpRequestAction, HttpRequestParams
from remediator.config import load

PLATFORM = "http://h.example/platform/"


def action(*prefixes: str) -> HttpRequestAction:
    return HttpRequestAction(prefixes or (PLATFORM,), SharedSession("tradeops-test"))


@pytest.mark.parametrize(
    ("prefix", "url"),
    [
        (PLATFORM, "http://h.example/platform/../admin"),  # dot segments
        (PLATFORM, "http://h.example/platform/./../admin"),
        (PLATFORM, "http://h.example/platform/%2e%2e/admin"),  # encoded dot segment
        (PLATFORM, "http://h.example/platform/%2E./admin"),
        (PLATFORM, "http://h.example/platform/a%2f..%2f..%2fadmin"),  # encoded slash
        (PLATFORM, "http://h.example/platform/..%5cadmin"),  # encoded backslash
        (PLATFORM, "http://h.example/platform/..\\admin"),  # backslash
        ("http://allowed", "http://allowed@evil.example/"),  # userinfo hides the host
        ("http://allowed", "http://allowed.evil.example/"),  # host boundary
        ("http://h.example", "http://h.example:6379/"),  # another port
        (
            "http://h.example/platform",
            "http://h.example/platform-evil/",
        ),  # segment boundary
        ("http://h.example/platform", "http://h.example/platformx"),
        (PLATFORM, "http://h.example/platform/x#@evil.example/"),  # fragment
        (PLATFORM, "http://h.example/platform/x y"),  # whitespace
    ],
)
def test_a_url_that_leaves_its_allowed_prefix_after_normalisation_is_refused(prefix: str, url: str) -> None:
    with pytest.raises(PermanentActionError):
        action(prefix).resolve_url(url, {})


@pytest.mark.parametrize("value", ["..", "../../admin", "a/../../admin", "a\\b"])
def test_an_allowlisted_label_value_cannot_move_the_url_out_of_its_prefix(
    value: str,
) -> None:
    with pytest.raises(PermanentActionError):
        action("http://h.example/platform/collectors/").resolve_url(
            "http://h.example/platform/collectors/{x}/reset", {"x": value}
        )


@pytest.mark.parametrize(
    ("prefix", "url", "called"),
    [
        (
            PLATFORM,
            "HTTP://H.Example/platform/x",
            "http://h.example/platform/x",
        ),  # scheme and host case
        (
            PLATFORM,
            "http://h.example:80/platform/x",
            "http://h.example/platform/x",
        ),  # default port
        (
            "https://h.example:443/platform/",
            "https://h.example/platform/x",
            "https://h.example/platform/x",
        ),
        (
            PLATFORM,
            "http://h.example/%70latform/%7Euser",
            "http://h.example/platform/~user",
        ),  # unreserved decoded
        (
            PLATFORM,
            "http://h.example/platform/a%2dz%3f",
            "http://h.example/platform/a-z%3F",
        ),
        (
            PLATFORM,
            "http://h.example/platform/a/../b",
            "http://h.example/platform/b",
        ),  # stays inside: resolved
        (
            "http://h.example/platform",
            "http://h.example/platform",
            "http://h.example/platform",
        ),
        (
            "http://h.example/platform",
            "http://h.example/platform/x?y=1",
            "http://h.example/platform/x?y=1",
        ),
        (
            "http://h.example/api/generate",
            "http://h.example/api/generate?now=1",
            "http://h.example/api/generate?now=1",
        ),
        ("http://[::1]:8080/p/", "http://[::1]:8080/p/x", "http://[::1]:8080/p/x"),
        (  # a Docker container name on a compose network: underscores, as Docker names its containers
            "http://mastertrade_strategy:8006/api/",
            "http://MasterTrade_Strategy:8006/api/generate",
            "http://mastertrade_strategy:8006/api/generate",
        ),
    ],
)
def test_a_url_within_its_prefix_is_called_in_its_normalised_form(prefix: str, url: str, called: str) -> None:
    assert action(prefix).resolve_url(url, {}) == called


@pytest.mark.parametrize(
    "prefix",
    [
        "http://user@h.example/",
        "http://h.example/a%2fb/",
        "ftp://h.example/",
        "http://h.example:x/",
        "http://_strategy:8006/",  # a name may not begin or end with an underscore or a hyphen
        "http://strategy_:8006/",
    ],
)
def test_an_allowed_prefix_that_cannot_be_normalised_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        action(prefix)


@pytest.fixture
async def platform(aiohttp_server: AiohttpServer) -> tuple[str, list[str]]:
    """A loopback server with a platform path and an admin path; it records every path it is asked for."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", seen


async def test_an_allowlisted_prefix_followed_by_dot_dot_never_reaches_another_path(
    platform: tuple[str, list[str]],
) -> None:
    base, seen = platform
    http = SharedSession("tradeops-test")
    request = HttpRequestAction((f"{base}/platform/",), http)
    try:
        for url in (
            f"{base}/platform/../admin",
            f"{base}/platform/%2e%2e/admin",
            f"{base}/platform/a%2f..%2f..%2fadmin",
        ):
            with contextlib.suppress(PermanentActionError):
                await request.run(HttpRequestParams(method="POST", url=url), {})
        result = await request.run(HttpRequestParams(method="POST", url=f"{base}/platform/a/../reset"), {})
    finally:
        await http.close()
    assert seen == ["/platform/reset"]  # the server never saw /admin
    assert "/platform/reset" in result.detail


def test_an_allowed_prefix_that_cannot_be_normalised_is_a_located_config_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "remediator.yml"
    path.write_text('allowed_url_prefixes: ["http://h.example/ok/", "http://allowed@evil.example/"]\n')
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert "allowed_url_prefixes[1]" in str(refused.value)
    assert "http://allowed@evil.example/" in str(refused.value)


def test_a_host_placeholder_takes_only_an_allowlisted_host_and_port() -> None:
    from remediator.actions.urls import UrlError, fill_url_template  # noqa: PLC0415

    assert fill_url_template("http://{instance}/reset", {"instance": "127.0.0.1:3001"}) == "http://127.0.0.1:3001/reset"
    assert fill_url_template("http://h/p/{c}", {"c": "a/../b"}) == "http://h/p/a%2F..%2Fb"
    for hostile in ("evil.com/x", "a@b", "h:1/..", "", "h h"):
        with pytest.raises(UrlError, match="is not a host"):
            fill_url_template("http://{instance}/reset", {"instance": hostile})
