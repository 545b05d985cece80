"""A real tradeops-remediator process killed with SIGKILL and restarted on the same files keeps its limits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from common.web import free_port
from tests.processes import process, wait_http
from tests.remediator_helpers import TOKEN, alert, payload, recorder

pytestmark = pytest.mark.integration
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def decisions(http: aiohttp.ClientSession, url: str, expect: int) -> list[dict[str, Any]]:
    """The audit's decision entries, once there are `expect` of them (bounded wait)."""
    found: list[dict[str, Any]] = []
    for _ in range(200):
        async with http.get(f"{url}/api/v1/remediations?limit=50", headers=HEADERS) as response:
            entries = (await response.json())["remediations"]
        found = [entry for entry in entries if entry["event"] == "decision"]
        if len(found) >= expect:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(found)} decisions recorded, expected {expect}")


async def test_a_cooldown_taken_before_a_sigkill_still_denies_the_target_after_the_restart(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        config = tmp_path / "remediator.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "audit_path": str(tmp_path / "audit.sqlite3"),
                    "allowed_url_prefixes": [f"{base}/platform/"],
                    "rules": [
                        {
                            "name": "reset-collector",
                            "matchers": ['alertname="CollectorFailed"'],
                            "action": "http_request",
                            "params": {"method": "POST", "url": f"{base}/platform/collectors/{{collector}}/reset"},
                            "label_params": {"collector": {"label": "collector", "allowed": ["binance"]}},
                            "target": "collector:{collector}",
                            "cooldown_minutes": 60,
                            "retries": 0,
                        }
                    ],
                }
            )
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "remediator.main", "--config.file", str(config)]
        argv += ["--web.listen-address", f"127.0.0.1:{port}"]
        env = {**os.environ, "TRADEOPS_WEBHOOK_TOKEN": TOKEN}
        async with aiohttp.ClientSession() as http:
            async with process(argv, tmp_path / "first.log", env=env) as first:
                await wait_http(f"{url}/-/healthy")
                first_alert = alert(name="CollectorFailed", collector="binance", instance="md-1")
                async with http.post(f"{url}/webhook", json=payload(first_alert), headers=HEADERS) as response:
                    assert response.status == 200
                assert [entry["decision"] for entry in await decisions(http, url, 1)] == ["executed"]
                first.send_signal(signal.SIGKILL)
                await first.wait()
            assert [path for path, _ in calls] == ["/platform/collectors/binance/reset"]

            async with process(argv, tmp_path / "second.log", env=env):
                await wait_http(f"{url}/-/healthy")
                # Another incident (another instance) on the same target, well inside the 60-minute cooldown.
                second_alert = alert(name="CollectorFailed", collector="binance", instance="md-2")
                async with http.post(f"{url}/webhook", json=payload(second_alert), headers=HEADERS) as response:
                    assert response.status == 200
                latest = (await decisions(http, url, 2))[0]
                assert latest["decision"] == "cooldown", latest
        assert [path for path, _ in calls] == ["/platform/collectors/binance/reset"]
