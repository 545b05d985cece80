"""Every networked action against a component that accepts and never answers: the rule's timeout ends it,
the failure is recorded and escalated, and the remediator goes on serving."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from remediator.config import RemediatorConfig
from tests.remediator_helpers import TOKEN, alert, payload, post, recorder, remediator_client, settle

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket whose connections are accepted by the kernel and never answered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    yield server.getsockname()[1]
    server.close()


def rule(action: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"slow-{action}",
        "matchers": [f'alertname="Slow_{action}"'],
        "action": action,
        "params": params,
        "timeout_seconds": 1,
        "retries": 0,
        "cooldown_minutes": 0,
    }


ACTIONS = [
    ("rabbitmq_purge", {"queue": "q", "min_messages": 0}),
    ("postgres_terminate", {"database": "x", "application_names": ["a"]}),
    ("postgres_cancel_queries", {"database": "x"}),
    ("redis_delete_keys", {"pattern": "tradeops:x*"}),
    ("redis_config_set", {"value": "allkeys-lru"}),
    ("alertmanager_silence", {"alertname": "X"}),
]


@pytest.mark.parametrize(("action", "params"), ACTIONS, ids=[a for a, _ in ACTIONS])
async def test_an_action_against_a_silent_component_times_out_and_escalates(
    tmp_path: Path, silent_port: int, action: str, params: dict[str, Any]
) -> None:
    async with recorder() as (base, calls):
        config = RemediatorConfig.model_validate(
            {
                "webhook_token": TOKEN,
                "audit_path": str(tmp_path / "audit.sqlite3"),
                "backends": {
                    "postgres_dsn": f"postgresql://postgres@127.0.0.1:{silent_port}/x",
                    "redis_url": f"redis://127.0.0.1:{silent_port}",
                    "amqp_url": f"amqp://guest:guest@127.0.0.1:{silent_port}/",
                    "alertmanager_url": f"http://127.0.0.1:{silent_port}",
                },
                "escalation": {"webhooks": [{"url": f"{base}/escalations"}]},
                "rules": [rule(action, params)],
            }
        )
        async with remediator_client(config) as (client, remediator):
            status, _ = await post(client, payload(alert(name=f"Slow_{action}")))
            assert status == 200
            await settle(remediator)
            entries = await remediator.engine.store.recent(20)
            assert (await client.get("/-/healthy")).status == 200
    outcomes = [(e["event"], e["decision"]) for e in reversed(entries)]
    assert ("action", "failure") in outcomes
    assert ("escalated", "action_failed") in outcomes
    escalations = [body for path, body in calls if path == "/escalations"]
    assert len(escalations) == 1


async def test_http_request_against_a_silent_endpoint_times_out_and_escalates(tmp_path: Path, silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/platform/generate"
    async with recorder() as (base, calls):
        config = RemediatorConfig.model_validate(
            {
                "webhook_token": TOKEN,
                "audit_path": str(tmp_path / "audit.sqlite3"),
                "allowed_url_prefixes": [url],
                "escalation": {"webhooks": [{"url": f"{base}/escalations", "shape": "slack"}]},
                "rules": [rule("http_request", {"url": url})],
            }
        )
        async with remediator_client(config) as (client, remediator):
            await post(client, payload(alert(name="Slow_http_request")))
            await settle(remediator)
            entries = await remediator.engine.store.recent(20)
    assert ("action", "failure") in [(e["event"], e["decision"]) for e in entries]
    (body,) = [body for path, body in calls if path == "/escalations"]
    assert body["text"].startswith("tradeops escalation: Slow_http_request (action_failed)")
