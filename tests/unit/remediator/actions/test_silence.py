"""alertmanager_silence against a loopback stand-in for Alertmanager's API v2: the silence it posts (equality
matchers only, expiring by itself), and how each answer is classed (5xx and no connection transient, 4xx
permanent, no Alertmanager configured permanent)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from common.http import SharedSession
from common.web import free_port
from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.actions.silence import AlertmanagerSilenceAction, SilenceParams


@dataclass
class FakeAlertmanager:
    """Answers POST /api/v2/silences with `status` and `body`, recording what it was sent."""

    url: str = ""
    status: int = 200
    body: str = '{"silenceID": "abc-123"}'
    received: list[dict[str, Any]] = field(default_factory=list)

    async def silences(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=self.status, text=self.body, content_type="application/json")


@pytest.fixture
async def alertmanager(aiohttp_server: AiohttpServer) -> FakeAlertmanager:
    fake = FakeAlertmanager()
    app = web.Application()
    app.router.add_post("/api/v2/silences", fake.silences)
    server = await aiohttp_server(app)
    fake.url = f"http://127.0.0.1:{server.port}/"
    return fake


@pytest.fixture
async def http() -> AsyncIterator[SharedSession]:
    session = SharedSession("tradeops-test")
    yield session
    await session.close()


PARAMS = SilenceParams(alertname="QueueBacklog", match_labels={"queue": "orders", "env": "prod"}, duration_minutes=30)


async def test_the_silence_has_equality_matchers_only_and_expires_by_itself(
    alertmanager: FakeAlertmanager, http: SharedSession
) -> None:
    result = await AlertmanagerSilenceAction(alertmanager.url, http).run(PARAMS, {})
    assert result.detail == "silence abc-123 for 30.0 min"
    [silence] = alertmanager.received
    assert silence["matchers"] == [
        {"name": "alertname", "value": "QueueBacklog", "isRegex": False, "isEqual": True},
        {"name": "env", "value": "prod", "isRegex": False, "isEqual": True},
        {"name": "queue", "value": "orders", "isRegex": False, "isEqual": True},
    ]
    starts, ends = dt.datetime.fromisoformat(silence["startsAt"]), dt.datetime.fromisoformat(silence["endsAt"])
    assert ends - starts == dt.timedelta(minutes=30)
    assert (silence["createdBy"], silence["comment"]) == ("tradeops-remediator", "tradeops: remediation settling")


async def test_a_regex_looking_label_value_is_matched_literally(
    alertmanager: FakeAlertmanager, http: SharedSession
) -> None:
    params = SilenceParams(alertname=".*", match_labels={"queue": ".+|orders"})
    await AlertmanagerSilenceAction(alertmanager.url, http).run(params, {})
    matchers = alertmanager.received[0]["matchers"]
    assert [m["value"] for m in matchers] == [".*", ".+|orders"]
    assert not any(m["isRegex"] for m in matchers)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_transient(alertmanager: FakeAlertmanager, http: SharedSession, status: int) -> None:
    alertmanager.status, alertmanager.body = status, '{"error": "down"}'
    with pytest.raises(TransientActionError, match=f"answered {status}"):
        await AlertmanagerSilenceAction(alertmanager.url, http).run(PARAMS, {})


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_refusal_is_permanent_and_says_why(
    alertmanager: FakeAlertmanager, http: SharedSession, status: int
) -> None:
    alertmanager.status, alertmanager.body = status, json.dumps("bad matcher")
    with pytest.raises(PermanentActionError, match=f"refused the silence \\({status}\\): bad matcher"):
        await AlertmanagerSilenceAction(alertmanager.url, http).run(PARAMS, {})


async def test_no_alertmanager_listening_is_transient(http: SharedSession) -> None:
    with pytest.raises(TransientActionError, match="Alertmanager"):
        await AlertmanagerSilenceAction(f"http://127.0.0.1:{free_port()}", http).run(PARAMS, {})


async def test_no_alertmanager_configured_is_permanent(http: SharedSession) -> None:
    with pytest.raises(PermanentActionError, match="no Alertmanager configured"):
        await AlertmanagerSilenceAction(None, http).run(PARAMS, {})


async def test_a_server_error_that_is_not_json_is_still_transient(
    alertmanager: FakeAlertmanager, http: SharedSession
) -> None:
    alertmanager.status, alertmanager.body = 502, "<html>Bad Gateway</html>"
    with pytest.raises(TransientActionError):
        await AlertmanagerSilenceAction(alertmanager.url, http).run(PARAMS, {})


@pytest.mark.parametrize(
    "params",
    [{"alertname": ""}, {"alertname": "a", "duration_minutes": 0}, {"alertname": "a", "duration_minutes": 24 * 60 + 1}],
)
def test_unbounded_or_empty_silences_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        SilenceParams.model_validate(params)
