"""The remediator's lifecycle API against a real process: /-/reload only with --web.enable-lifecycle and the
token, and no reload (HTTP or SIGHUP) may remove or weaken authentication."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from common.web import free_port
from tests.processes import process, wait_http
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EMPTY_BEARER = {"Authorization": "Bearer "}
_names = itertools.count()


def remediator_argv() -> list[str]:
    """The installed console script, or the module when the scripts are not on PATH."""
    script = shutil.which("tradeops-remediator")
    return [script] if script else [sys.executable, "-m", "remediator.main"]


class Service:
    """A running tradeops-remediator process, its config file and an HTTP session."""

    def __init__(self, tmp_path: Path, child: asyncio.subprocess.Process, http: aiohttp.ClientSession, url: str):
        self.tmp_path = tmp_path
        self.child = child
        self.http = http
        self.url = url
        self.config_path = tmp_path / "remediator.yml"
        self.token_file = tmp_path / "token"

    def write(self, **changes: Any) -> None:
        """Rewrite the config file: the base config with these keys changed (None removes a key)."""
        write_config(self.tmp_path, **changes)

    async def reload(self, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST /-/reload; return the status and the JSON (or text) body."""
        async with self.http.post(f"{self.url}/-/reload", headers=headers or {}) as response:
            body: Any = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body

    async def webhook_status(self, headers: dict[str, str], name: str = "First") -> int:
        """POST one firing alert to /webhook; return the status."""
        body = payload(alert(name=name, instance=f"i{next(_names)}"))
        async with self.http.post(f"{self.url}/webhook", json=body, headers=headers) as response:
            return response.status

    async def rule_for(self, name: str) -> str | None:
        """Send an alert named `name` with the token and return the rule its decision named (None: no rule)."""
        instance = f"i{next(_names)}"
        body = payload(alert(name=name, instance=instance))
        async with self.http.post(f"{self.url}/webhook", json=body, headers=BEARER) as response:
            assert response.status == 200, await response.text()
        for _ in range(100):
            async with self.http.get(f"{self.url}/api/v1/remediations?limit=100", headers=BEARER) as response:
                entries = (await response.json())["remediations"]
            decided = [e for e in entries if e["labels"].get("instance") == instance and e["decision"]]
            if decided:
                rule: str | None = decided[0]["rule"]
                return rule
            await asyncio.sleep(0.1)
        raise AssertionError(f"no decision recorded for {name}")

    def log(self) -> str:
        """What the process logged so far."""
        return (self.tmp_path / "remediator.log").read_text(errors="replace")


def write_config(tmp_path: Path, **changes: Any) -> Path:
    """A remediator config whose token is in a file; one rule `first` for alerts named First."""
    token_file = tmp_path / "token"
    if not token_file.exists():
        token_file.write_text(TOKEN + "\n")
    data: dict[str, Any] = {
        "webhook_token_file": str(token_file),
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "rules": [{"name": "first", "matchers": ['alertname="First"'], "action": "log"}],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.asynccontextmanager
async def remediator(tmp_path: Path, *flags: str) -> AsyncIterator[Service]:
    """Start tradeops-remediator on its config file (no TRADEOPS_WEBHOOK_TOKEN in its environment)."""
    config = write_config(tmp_path)
    port = free_port()
    argv = [*remediator_argv(), "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}", *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    url = f"http://127.0.0.1:{port}"
    async with process(argv, tmp_path / "remediator.log", env=env) as child, aiohttp.ClientSession() as http:
        await wait_http(f"{url}/-/ready")
        yield Service(tmp_path, child, http, url)


SECOND_RULE = [
    {"name": "first", "matchers": ['alertname="First"'], "action": "log"},
    {"name": "second", "matchers": ['alertname="Second"'], "action": "log"},
]


async def test_without_the_lifecycle_flag_reload_is_forbidden_and_changes_nothing(tmp_path: Path) -> None:
    async with remediator(tmp_path) as service:
        service.write(rules=SECOND_RULE)
        status, body = await service.reload(BEARER)
        assert status == 403
        assert "Lifecycle API is not enabled." in str(body)
        assert await service.rule_for("Second") is None  # the old rules still apply
        assert await service.rule_for("First") == "first"


async def test_with_the_flag_a_reload_without_the_token_is_401_and_changes_nothing(tmp_path: Path) -> None:
    async with remediator(tmp_path, "--web.enable-lifecycle") as service:
        service.write(rules=SECOND_RULE)
        for headers in ({}, EMPTY_BEARER, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            status, _ = await service.reload(headers)
            assert status == 401, headers
        assert await service.rule_for("Second") is None


async def test_a_reload_that_would_remove_or_weaken_authentication_is_refused(tmp_path: Path) -> None:
    async with remediator(tmp_path, "--web.enable-lifecycle") as service:
        service.write(webhook_token_file=None, rules=SECOND_RULE)  # tokenless
        status, body = await service.reload(BEARER)
        assert status == 409, body
        assert "token" in body["error"]
        assert await service.webhook_status({}) == 401  # the old token is still required
        assert await service.webhook_status(EMPTY_BEARER) == 401
        assert await service.webhook_status(BEARER) == 200
        assert await service.rule_for("Second") is None  # and none of the file's other changes applied

        service.write(webhook_token_file=None, allow_unauthenticated=True, rules=SECOND_RULE)
        status, body = await service.reload(BEARER)
        assert status == 409, body
        service.write(allow_unauthenticated=True, rules=SECOND_RULE)  # even with the token kept
        status, body = await service.reload(BEARER)
        assert status == 409, body
        assert "allow_unauthenticated" in body["error"]
        assert await service.webhook_status({}) == 401
        assert "reload_refused" in service.log()

        service.token_file.write_text("  \n")  # an empty token file is a config error, not "no token"
        service.write(rules=SECOND_RULE)
        status, body = await service.reload(BEARER)
        assert status in {400, 409, 500}, body
        assert any("webhook_token_file" in line for line in body.get("details", [body["error"]]))
        assert await service.webhook_status(EMPTY_BEARER) == 401
        assert await service.webhook_status(BEARER) == 200


async def test_a_valid_reload_with_the_token_applies_the_new_rules_and_a_rotated_token(tmp_path: Path) -> None:
    async with remediator(tmp_path, "--web.enable-lifecycle") as service:
        assert await service.rule_for("Second") is None
        service.write(rules=SECOND_RULE)
        status, body = await service.reload(BEARER)
        assert status == 200, body
        assert await service.rule_for("Second") == "second"

        service.token_file.write_text("rotated-token\n")
        status, body = await service.reload(BEARER)
        assert status == 200, body
        assert await service.webhook_status(BEARER) == 401
        assert await service.webhook_status({"Authorization": "Bearer rotated-token"}) == 200
        for path in ("/webhook", "/-/reload", "/api/v1/remediations"):
            method = service.http.get if path.startswith("/api") else service.http.post
            async with method(f"{service.url}{path}", headers=EMPTY_BEARER) as response:
                assert response.status == 401, path


async def test_sighup_reloads_without_the_flag_but_never_weakens_authentication(tmp_path: Path) -> None:
    async with remediator(tmp_path) as service:
        service.write(rules=SECOND_RULE)
        service.child.send_signal(signal.SIGHUP)
        for _ in range(100):
            if await service.rule_for("Second") == "second":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("SIGHUP did not reload")
        service.write(webhook_token_file=None)
        service.child.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "reload_refused" in service.log():
                break
            await asyncio.sleep(0.1)
        assert "reload_refused" in service.log()
        assert await service.webhook_status({}) == 401
        assert await service.webhook_status(BEARER) == 200
        async with service.http.get(f"{service.url}/-/healthy") as response:
            assert response.status == 200


@pytest.mark.parametrize("content", ["", "\n", "  \t\n"])
def test_check_config_rejects_an_empty_token_file_with_its_location(tmp_path: Path, content: str) -> None:
    config = write_config(tmp_path)
    (tmp_path / "token").write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    result = subprocess.run(
        [*remediator_argv(), "--config.file", str(config), "--check-config"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert f"{config}: webhook_token_file:" in result.stderr
    assert "empty" in result.stderr


def test_check_config_rejects_an_empty_token_in_the_environment(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}, "TRADEOPS_WEBHOOK_TOKEN": " "}
    result = subprocess.run(
        [*remediator_argv(), "--config.file", str(config), "--check-config"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "TRADEOPS_WEBHOOK_TOKEN" in result.stderr
