"""Helpers for remediator tests: configs, payloads, recording HTTP endpoints, and a running app."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from remediator.api.web import Remediator, build_app
from remediator.app import build_engine
from remediator.audit.sqlite import SqliteStore
from remediator.config import RemediatorConfig
from remediator.escalation.outbox import DurableOutbox
from remediator.metrics import RemediatorMetrics
from tests.processes import served

TOKEN = "s3cret-token"
STARTS = "2026-11-22T03:00:00Z"


def alert(
    name: str = "StrategyGenerationStalled", status: str = "firing", starts: str = STARTS, **labels: str
) -> dict[str, Any]:
    """One webhook alert whose fingerprint follows its labels."""
    all_labels = {"alertname": name, "priority": "P1", "severity": "critical", **labels}
    fingerprint = hashlib.sha256(repr(sorted(all_labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": "s"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    """An Alertmanager webhook payload, version 4."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": "tradeops",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": list(alerts),
    }


@asynccontextmanager
async def recorder() -> AsyncIterator[tuple[str, list[tuple[str, Any]]]]:
    """A loopback HTTP endpoint recording every request (path, JSON body); 500 for paths with /fail, else 200."""
    calls: list[tuple[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        calls.append((request.path, body))
        return web.json_response({}, status=500 if "/fail" in request.path else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with served(app) as url:
        yield url, calls


def recording(bodies: list[dict[str, Any]]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler (a stand-in pager's /escalations) that keeps each request's JSON body in `bodies`, answering 200."""

    async def handler(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({})

    return handler


def config(tmp_path: Path, base_url: str, **overrides: Any) -> RemediatorConfig:
    """A remediator config whose rules call the recorder and escalate to it."""
    data: dict[str, Any] = {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "allowed_url_prefixes": [f"{base_url}/platform/"],
        "limits": {"actions_per_hour": 100, "concurrency": 2, "queue_size": 20000},
        "escalation": {
            "webhooks": [{"url": f"{base_url}/escalations", "shape": "generic"}],
            "check_interval_seconds": 0.05,
        },
        "rules": [
            {
                "name": "trigger-generation",
                "matchers": ['alertname="StrategyGenerationStalled"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base_url}/platform/generate", "json_body": {"count": 500}},
                "max_attempts": 2,
                "retry_after_minutes": 60,
                "cooldown_minutes": 0,
                "rate": {"per_minute": 600, "burst": 100},
                "retries": 0,
            },
            {
                "name": "reset-collector",
                "matchers": ['alertname="CollectorFailed"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base_url}/platform/collectors/{{collector}}/reset"},
                "label_params": {"collector": {"label": "collector", "allowed": ["binance", "kraken"]}},
                "target": "collector:{collector}",
                "cooldown_minutes": 0,
                "rate": {"per_minute": 600, "burst": 100},
                "retries": 0,
            },
            {
                "name": "broken-endpoint",
                "matchers": ['alertname="BrokenThing"'],
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base_url}/platform/fail"},
                "cooldown_minutes": 0,
                "rate": {"per_minute": 600, "burst": 100},
                "retries": 1,
            },
            {"name": "judgement", "matchers": ['alertname="ApiLatencyHigh"'], "action": "escalate"},
            {"name": "known-noise", "matchers": ['alertname="Noise"'], "action": "ignore"},
        ],
    }
    data.update(overrides)
    return RemediatorConfig.model_validate(data)


@asynccontextmanager
async def remediator_client(
    cfg: RemediatorConfig,
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Remediator]]:
    """Serve a remediator for the config; yield a test client and the Remediator."""
    remediator = Remediator(build_engine(cfg, RemediatorMetrics()), None)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(build_app(remediator)))
    await client.start_server()
    try:
        yield client, remediator
    finally:
        await client.close()


def auth() -> dict[str, str]:
    """The Authorization header with the test token."""
    return {"Authorization": f"Bearer {TOKEN}"}


async def post(client: TestClient[web.Request, web.Application], body: Any) -> tuple[int, Any]:
    """POST a payload to /webhook with the token; return status and JSON."""
    data = io.BytesIO(json.dumps(body).encode())  # a stream: aiohttp warns about large raw bodies
    response = await client.post("/webhook", data=data, headers={**auth(), "Content-Type": "application/json"})
    return response.status, await response.json()


async def settle(remediator: Remediator) -> None:
    """Wait until every queued alert has been processed and its escalations delivered (bounded)."""
    await remediator.engine.queue.join()
    outbox = remediator.engine.outbox
    if isinstance(outbox, DurableOutbox):
        for _ in range(400):
            if not any(stats.pending for stats in (await outbox.records.stats()).values()):
                return
            await asyncio.sleep(0.025)


def decisions(entries: list[dict[str, Any]]) -> list[str]:
    """The decision reasons of audit entries, oldest first."""
    return [e["decision"] for e in reversed(entries) if e["event"] == "decision"]


async def rewind(remediator: Remediator, key_prefix: str, hours: float) -> None:
    """Move an incident's last attempt into the past, as if time had passed (no sleeping in tests)."""
    store = remediator.engine.store
    assert isinstance(store, SqliteStore)
    keys = [row[0] for row in store._read("SELECT key FROM incident_records")]
    for key in keys:
        if key.startswith(key_prefix):
            incident = await store.incident(key)
            assert incident is not None
            if incident.last_attempt_at is not None:
                incident.last_attempt_at -= dt.timedelta(hours=hours)
                await store.save(incident)
