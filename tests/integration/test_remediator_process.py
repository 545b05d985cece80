"""The tradeops-remediator process: its CLI, its token, and escalation into a real Alertmanager."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from common.web import free_port
from tests.prereqs import require_binary
from tests.processes import alertmanager, process, wait_http
from tests.remediator_helpers import TOKEN, alert, payload, recorder

pytestmark = pytest.mark.integration
PROFILE = Path(__file__).parents[2] / "deploy/profiles/mastertrade/remediator.yml"


def remediator_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remediator.main", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_config_accepts_the_shipped_profile_and_locates_every_error(tmp_path: Path) -> None:
    assert remediator_cli("--config.file", str(PROFILE), "--check-config").returncode == 0
    bad = write(
        tmp_path,
        {
            "rules": [
                {"name": "a", "matchers": ['alertname="X"'], "action": "log"},
                {"name": "b", "matchers": ['alertname=~"("'], "action": "log"},
            ],
            "limits": {"concurrency": 0},
            "colour": "blue",
        },
    )
    result = remediator_cli("--config.file", str(bad), "--check-config")
    assert result.returncode == 1
    assert "colour: Extra inputs are not permitted" in result.stderr
    assert "limits.concurrency" in result.stderr
    assert "rules[1].matchers[0]" in result.stderr


def test_check_config_reports_unknown_actions_and_bad_parameters(tmp_path: Path) -> None:
    bad = write(
        tmp_path,
        {
            "rules": [
                {"name": "a", "matchers": ['alertname="X"'], "action": "reboot_everything"},
                {"name": "c", "matchers": ['alertname="Y"'], "action": "http_request", "params": {"method": "YEET"}},
            ]
        },
    )
    result = remediator_cli("--config.file", str(bad), "--check-config")
    assert result.returncode == 1
    assert "rules[0].action: unknown action 'reboot_everything'" in result.stderr
    assert "rules[1].params.method" in result.stderr
    assert "rules[1].params.url" in result.stderr


def test_explain_prints_one_json_line_per_alert_and_runs_nothing(tmp_path: Path) -> None:
    body = payload(
        alert(),
        alert(name="CollectorFailed", collector="binance"),
        alert(name="CollectorFailed", collector="../etc"),
        alert(name="Nobody"),
        {**alert(name="ApiLatencyHigh"), "status": "resolved"},
    )
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps(body))
    config = yaml.safe_load(PROFILE.read_text())
    config["audit_path"] = str(tmp_path / "never-created" / "audit.sqlite3")
    result = remediator_cli("--config.file", str(write(tmp_path, config)), "--explain", str(payload_file))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["rule"], line["decision"]) for line in lines] == [
        ("trigger-generation", "executed"),
        ("reset-collector", "executed"),
        ("reset-collector", "not_allowed"),
        (None, "no_rule"),
        (None, "resolved"),
    ]
    assert not (tmp_path / "never-created").exists()


def test_explain_rejects_a_malformed_payload_with_located_errors(tmp_path: Path) -> None:
    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"version": "4", "alerts": [{"status": "exploding"}]}))
    result = remediator_cli("--config.file", str(PROFILE), "--explain", str(payload_file))
    assert result.returncode == 1
    assert "alerts[0].status" in result.stderr


def test_the_remediator_refuses_to_serve_without_a_token(tmp_path: Path) -> None:
    config = write(tmp_path, {"audit_path": str(tmp_path / "a.db")})
    env = {k: v for k, v in os.environ.items() if k != "TRADEOPS_WEBHOOK_TOKEN"}
    result = remediator_cli("--config.file", str(config), "--web.listen-address", f"127.0.0.1:{free_port()}", env=env)
    assert result.returncode == 1
    assert "no webhook token" in result.stderr


async def test_a_denied_action_escalates_into_a_real_alertmanager_and_resolving_closes_it(tmp_path: Path) -> None:
    async with alertmanager(tmp_path) as am_url, recorder() as (base, calls):
        port = free_port()
        config = write(
            tmp_path,
            {
                "audit_path": str(tmp_path / "audit.sqlite3"),
                "allowed_url_prefixes": [f"{base}/platform/"],
                "escalation": {"alertmanager": {"url": am_url}, "check_interval_seconds": 0.2},
                "rules": [
                    {
                        "name": "reset-collector",
                        "matchers": ['alertname="CollectorFailed"'],
                        "action": "http_request",
                        "params": {"url": f"{base}/platform/collectors/{{collector}}/reset"},
                        "label_params": {"collector": {"label": "collector", "allowed": ["binance"]}},
                    }
                ],
            },
        )
        env = {**os.environ, "TRADEOPS_WEBHOOK_TOKEN": TOKEN}
        argv = [
            sys.executable,
            "-m",
            "remediator.main",
            "--config.file",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ]
        async with process(argv, tmp_path / "remediator.log", env=env) as child, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            await wait_http(f"{url}/-/healthy")
            hostile = alert(name="CollectorFailed", collector="binance; curl evil", team="data")
            async with http.post(f"{url}/webhook", json=payload(hostile)) as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.post(f"{url}/webhook", json=payload(hostile), headers=headers) as response:
                assert response.status == 200
            escalated = await _wait_for_alerts(http, am_url, expect=1)
            labels = escalated[0]["labels"]
            assert labels["original_alertname"] == "CollectorFailed"
            assert labels["escalation_reason"] == "not_allowed"
            assert labels["collector"] == "binance; curl evil"
            assert labels["team"] == "data"
            async with http.post(
                f"{url}/webhook", json=payload({**hostile, "status": "resolved"}), headers=headers
            ) as response:
                assert response.status == 200
            await _wait_for_alerts(http, am_url, expect=0)
            # The resolution reaches Alertmanager before the alert's audit entries are written (together, as
            # its processing ends): wait for them.
            events: list[str] = []
            for _ in range(100):
                async with http.get(f"{url}/api/v1/remediations?limit=20", headers=headers) as response:
                    events = [entry["event"] for entry in (await response.json())["remediations"]]
                if "escalation_resolved" in events:
                    break
                await asyncio.sleep(0.1)
            assert "escalated" in events
            assert "escalation_resolved" in events
            child.send_signal(signal.SIGHUP)  # a reload keeps serving
            await asyncio.sleep(0.2)
            async with http.get(f"{url}/-/ready") as response:
                assert response.status == 200
    assert [path for path, _ in calls if path.startswith("/platform/")] == []


async def _wait_for_alerts(http: aiohttp.ClientSession, am_url: str, expect: int) -> list[dict[str, Any]]:
    query = f'{am_url}/api/v2/alerts?active=true&filter=alertname="RemediationEscalated"'
    alerts: list[dict[str, Any]] = []
    for _ in range(100):
        async with http.get(query) as response:
            alerts = await response.json()
        if len(alerts) == expect:
            return alerts
        await asyncio.sleep(0.1)
    raise AssertionError(f"Alertmanager holds {len(alerts)} RemediationEscalated alerts, expected {expect}")


async def test_the_listener_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    openssl = require_binary("openssl")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    config = write(tmp_path, {"audit_path": str(tmp_path / "a.db")})
    web_config = tmp_path / "web.yml"
    web_config.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}))
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "remediator.main",
        "--config.file",
        str(config),
        "--web.config.file",
        str(web_config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
    ]
    async with process(argv, tmp_path / "remediator.log", env={**os.environ, "TRADEOPS_WEBHOOK_TOKEN": TOKEN}):
        context = ssl.create_default_context(cafile=str(cert))
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(100):
                try:
                    async with http.get(f"https://127.0.0.1:{port}/-/healthy") as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("the HTTPS listener never answered")
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(f"http://127.0.0.1:{port}/-/healthy") as response:
                    await response.read()
