"""Auth headers on http_request actions (bearer or basic from files) and the `*_file` secrets: the header
reaches the endpoint, and the secret is in no audit entry, log line or metric."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from pydantic import ValidationError

from common.config import ConfigError
from remediator.app import load_checked
from remediator.config import BackendsConfig, EscalationConfig, WebhookEscalation
from remediator.escalation.channels import channels
from tests.processes import served
from tests.remediator_helpers import alert, auth, config, payload, post, remediator_client, settle

TOKEN = "tok-9f8e7d6c5b4a-never-logged"
PASSWORD = "pw-1a2b3c4d-never-logged"


@asynccontextmanager
async def protected() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A loopback endpoint like seed 002's maintenance API under /platform/: 401 without the right Authorization
    header; each request's headers are recorded."""
    seen: list[dict[str, str]] = []
    expected = {f"Bearer {TOKEN}", "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()}

    async def handler(request: web.Request) -> web.Response:
        if not request.path.startswith("/platform/"):
            return web.json_response({})  # the config's escalation webhook
        seen.append(dict(request.headers))
        if request.headers.get("Authorization") not in expected:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with served(app) as url:
        yield url, seen


def maintenance_rule(base: str, auth_params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "enter-maintenance",
        "matchers": ['alertname="AiTradingDataCorruption"'],
        "action": "http_request",
        "params": {
            "method": "POST",
            "url": f"{base}/platform/maintenance/enter",
            "json_body": {"mode": "read_only"},
            "auth": auth_params,
        },
        "cooldown_minutes": 0,
        "rate": {"per_minute": 600, "burst": 100},
        "retries": 0,
    }


async def run_rule(tmp_path: Path, base: str, auth_params: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str]:
    """Fire one alert at the rule; return the audit entries, /metrics and the audit API's text."""
    cfg = config(tmp_path, base, rules=[maintenance_rule(base, auth_params)])
    async with remediator_client(cfg) as (client, remediator):
        status, _ = await post(client, payload(alert("AiTradingDataCorruption")))
        assert status == 200
        await settle(remediator)
        entries = await remediator.engine.store.recent(100)
        metrics = await (await client.get("/metrics")).text()
        api = await (await client.get("/api/v1/remediations", headers=auth())).text()
    return entries, metrics, api


async def test_http_request_with_a_bearer_token_file_sends_the_header_and_the_token_appears_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "api_token"
    token_file.write_text(TOKEN + "\n")
    caplog.set_level(logging.DEBUG)
    async with protected() as (base, seen):
        entries, metrics, api = await run_rule(tmp_path, base, {"bearer_token_file": str(token_file)})
    assert [h.get("Authorization") for h in seen] == [f"Bearer {TOKEN}"]
    assert [e["decision"] for e in entries if e["event"] == "action"] == ["success"], entries
    assert TOKEN not in json.dumps(entries, default=str)
    assert TOKEN not in api
    assert TOKEN not in metrics
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert TOKEN not in caplog.text


async def test_http_request_with_basic_auth_from_a_password_file_reaches_the_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    caplog.set_level(logging.DEBUG)
    async with protected() as (base, seen):
        entries, metrics, api = await run_rule(tmp_path, base, {"username": "ops", "password_file": str(password_file)})
    assert len(seen) == 1
    assert seen[0]["Authorization"].startswith("Basic ")
    assert [e["decision"] for e in entries if e["event"] == "action"] == ["success"], entries
    for text in (json.dumps(entries, default=str), api, metrics, caplog.text):
        assert PASSWORD not in text
        assert seen[0]["Authorization"] not in text


async def test_an_unreadable_token_file_fails_the_action_without_calling_the_endpoint(tmp_path: Path) -> None:
    async with protected() as (base, seen):
        entries, _, _ = await run_rule(tmp_path, base, {"bearer_token_file": str(tmp_path / "missing")})
    assert seen == []
    results = [e for e in entries if e["event"] == "action"]
    assert results, entries
    assert "success" not in [e["decision"] for e in results], entries
    assert str(tmp_path / "missing") in results[0]["detail"]


@pytest.mark.parametrize(
    "auth_params",
    [
        {},
        {"bearer_token_file": "/run/secrets/t", "username": "ops", "password_file": "/run/secrets/p"},
        {"username": "ops"},
        {"bearer_token_file": "relative/path"},
        {"bearer_token": "inline-secret"},
    ],
)
def test_an_auth_block_with_no_or_two_schemes_a_relative_path_or_an_inline_secret_is_a_config_error(
    tmp_path: Path, auth_params: dict[str, Any]
) -> None:
    data = config(tmp_path, "http://127.0.0.1:1").model_dump(mode="json", exclude_none=True)
    data["webhook_token"] = TOKEN
    data["rules"] = [maintenance_rule("http://127.0.0.1:1", auth_params)]
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"rules\[0\]\.params\.auth|rules\.0\.params\.auth") as raised:
        load_checked(path)
    assert "inline-secret" not in str(raised.value)


def test_backends_redis_url_may_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "redis_url"
    path.write_text("redis://:secret@127.0.0.1:6379/3\n")
    assert BackendsConfig(redis_url_file=path).redis() == "redis://:secret@127.0.0.1:6379/3"
    with pytest.raises(ValidationError, match="not both"):
        BackendsConfig(redis_url="redis://x", redis_url_file=path)
    with pytest.raises(ValidationError, match="cannot read"):
        BackendsConfig(redis_url_file=tmp_path / "missing")


def test_an_escalation_webhook_url_may_come_from_a_file_and_is_never_in_the_config_repr(tmp_path: Path) -> None:
    path = tmp_path / "slack_url"
    secret_url = "https://hooks.example.com/services/T000/B000/secretpart"
    path.write_text(secret_url + "\n")
    webhook = WebhookEscalation(url_file=path, shape="slack")
    assert webhook.resolved_url() == secret_url
    assert "secretpart" not in repr(webhook)
    assert channels(EscalationConfig(webhooks=(webhook,)))["webhook:slack"].url == secret_url
    path.write_text("not a url")
    with pytest.raises(ValidationError, match="does not hold an http"):
        WebhookEscalation(url_file=path)
    with pytest.raises(ValidationError, match="exactly one of url or url_file"):
        WebhookEscalation(url=secret_url, url_file=path)
