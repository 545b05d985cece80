"""The read API against its own OpenAPI document: schemathesis generates requests (valid and not) for every
operation and checks each answer against the document, on a real tradeops-remediator process fed by its webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import CheckFunction
from schemathesis.specs.openapi.checks import positive_data_acceptance

from common.web import free_port
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 25  # per operation: bounded


def _request(url: str, body: bytes | None = None) -> bytes:
    headers = {**AUTH, "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=5) as answer:
        data: bytes = answer.read()
        return data


@pytest.fixture
def remediator_url(tmp_path: Path) -> Iterator[str]:
    config = {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "escalation": {"webhooks": [{"url": "http://127.0.0.1:9/escalations", "shape": "generic"}]},
        "rules": [
            {"name": "judgement", "matchers": ['alertname="ApiLatencyHigh"'], "action": "escalate"},
            {"name": "known-noise", "matchers": ['alertname="Noise"'], "action": "ignore"},
            {
                "name": "guarded",
                "matchers": ['alertname="QueueDepthCritical"'],
                "steps": [{"name": "purge", "action": "log", "approval": {"within_minutes": 60}}],
            },
        ],
    }
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "remediator.log").open("wb") as log:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "remediator.main",
                "--config.file",
                str(path),
                "--web.listen-address",
                f"127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"{url}/-/healthy", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            sent = (alert("ApiLatencyHigh"), alert("Noise"), alert("Unmatched"), alert("QueueDepthCritical"))
            _request(f"{url}/webhook", json.dumps(payload(*sent)).encode())
            for _ in range(200):  # every state the document lists for an incident, waiting_approval among them
                states = {i["state"] for i in json.loads(_request(f"{url}/api/v1/incidents"))["incidents"]}
                if {"escalated", "waiting_approval"} <= states:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError(f"the incidents never reached escalated and waiting_approval: {states}")
            yield url
        finally:
            child.terminate()
            child.wait(10)


def test_every_read_api_answer_matches_the_openapi_document(remediator_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{remediator_url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert {operation.path for operation in operations} == {
        "/api/v1/incidents",
        "/api/v1/incidents/{id}",
        "/api/v1/remediations",
    }
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            # A schema-valid but made-up cursor is rightly 400: the check that valid data is accepted skips it.
            made_up = bool(case.query and case.query.get("cursor"))
            excluded: list[CheckFunction] = [positive_data_acceptance] if made_up else []
            case.call_and_validate(base_url=remediator_url, headers=AUTH, excluded_checks=excluded)

        check()
