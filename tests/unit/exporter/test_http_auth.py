"""Auth headers on the exporter's HTTP probes (bearer or basic, from files) and amqp_url_file."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from exporter.config import CollectorsConfig, RabbitMQConfig, ServiceHealthConfig
from exporter.probes.base import ProbeError
from exporter.probes.http import CollectorsProbe, ServiceHealthProbe
from exporter.sink import MetricSink
from tests.processes import served

TOKEN = "exp-tok-31415926-never-in-metrics"


@asynccontextmanager
async def protected() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A loopback health API that answers 401 unless the bearer token or ops's basic credentials come along."""
    seen: list[str | None] = []
    expected = {f"Bearer {TOKEN}", "Basic " + base64.b64encode(b"ops:pw-271828").decode()}

    async def health(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") not in expected:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"status": "healthy", "collectors": {"binance": {"status": "healthy"}}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", health)
    async with served(app) as url:
        yield url, seen


def sink_text(sink: MetricSink) -> str:
    return repr(sink.families)


async def test_a_service_health_probe_with_a_bearer_token_file_is_healthy_and_the_token_is_in_no_metric(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    async with protected() as (base, seen), aiohttp.ClientSession() as session:
        config = ServiceHealthConfig.model_validate(
            {"name": "maintenance", "url": f"{base}/health", "auth": {"bearer_token_file": str(token)}}
        )
        sink = MetricSink()
        await ServiceHealthProbe(config, session, 1 << 20).collect(sink)
    assert seen == [f"Bearer {TOKEN}"]
    assert list(sink.families["tradeops_service_up"].samples.values()) == [1]
    assert TOKEN not in sink_text(sink)


async def test_a_collectors_probe_with_basic_auth_from_a_password_file_reads_the_collectors(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pw-271828")
    async with protected() as (base, seen), aiohttp.ClientSession() as session:
        config = CollectorsConfig.model_validate(
            {
                "name": "api",
                "url": f"{base}/health/collectors",
                "auth": {"username": "ops", "password_file": str(password)},
            }
        )
        sink = MetricSink()
        await CollectorsProbe(config, session, 1 << 20).collect(sink)
    assert seen == ["Basic " + base64.b64encode(b"ops:pw-271828").decode()]
    assert "tradeops_collector_status" in sink.families
    assert "pw-271828" not in sink_text(sink)


async def test_an_unreadable_token_file_fails_the_probe_with_reason_auth_and_sends_nothing(tmp_path: Path) -> None:
    async with protected() as (base, seen), aiohttp.ClientSession() as session:
        config = ServiceHealthConfig.model_validate(
            {"name": "m", "url": f"{base}/health", "auth": {"bearer_token_file": str(tmp_path / "missing")}}
        )
        with pytest.raises(ProbeError) as raised:
            await ServiceHealthProbe(config, session, 1 << 20).collect(MetricSink())
    assert raised.value.reason == "auth"
    assert seen == []


def test_amqp_url_may_come_from_a_file_and_not_together_with_amqp_url(tmp_path: Path) -> None:
    path = tmp_path / "amqp_url"
    path.write_text("amqp://u:secret@127.0.0.1:5672/\n")
    config = RabbitMQConfig.model_validate({"name": "mq", "amqp_url_file": str(path), "queues": ["q"]})
    assert config.resolved_amqp_url() == "amqp://u:secret@127.0.0.1:5672/"
    assert "secret" not in repr(config)
    with pytest.raises(ValidationError, match="not both"):
        RabbitMQConfig.model_validate(
            {"name": "mq", "amqp_url": "amqp://x", "amqp_url_file": str(path), "queues": ["q"]}
        )
    with pytest.raises(ValidationError, match="exactly one"):
        RabbitMQConfig.model_validate(
            {"name": "mq", "management_url": "http://x", "amqp_url_file": str(path), "queues": ["q"]}
        )
