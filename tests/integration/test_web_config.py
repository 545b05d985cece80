"""--web.config.file against real exporter and remediator processes: HTTPS with a throwaway CA, basic auth on
every exporter endpoint (/metrics and /-/reload too), a basic-auth user as the remediator's alternative to its
bearer token, and client certificates when client_auth_type requires them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from common.web import free_port
from tests.exporter_helpers import write_config
from tests.processes import process
from tests.remediator_helpers import TOKEN, alert, payload
from tests.webconfig_helpers import Pki, bcrypt_hash, make_pki

pytestmark = pytest.mark.integration
USER, PASSWORD = "prometheus", "scrape-s3cret"


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization: Basic header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


BASIC = basic(USER, PASSWORD)


def web_config(tmp_path: Path, pki: Pki, users: bool = True, **tls: Any) -> Path:
    path = tmp_path / "web.yml"
    data: dict[str, Any] = {
        "tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **tls}
    }
    if users:
        data["basic_auth_users"] = {USER: bcrypt_hash(PASSWORD)}
    path.write_text(yaml.safe_dump(data))
    return path


def client_context(pki: Pki, with_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if with_client_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


async def wait_https(url: str, context: ssl.SSLContext, log: Path) -> None:
    """Wait (bounded) until GET url answers at all over TLS."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError):
                async with http.get(url) as response:
                    await response.read()
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered: {log.read_text()[-2000:]}")


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}, **extra}


@contextlib.asynccontextmanager
async def exporter(tmp_path: Path, web: Path, ready: ssl.SSLContext) -> AsyncIterator[str]:
    """Run tradeops-exporter with the web config and --web.enable-lifecycle; yield its https URL."""
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    port = free_port()
    argv = [sys.executable, "-m", "exporter.main", "--config.file", str(config), "--web.config.file", str(web)]
    argv += ["--web.listen-address", f"127.0.0.1:{port}", "--web.enable-lifecycle"]
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "exporter.log"
    async with process(argv, log, env=clean_env()):
        await wait_https(f"{url}/-/healthy", ready, log)
        yield url


async def test_the_exporter_over_tls_answers_401_without_credentials_and_200_with_them(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    context = client_context(pki)
    async with (
        exporter(tmp_path, web_config(tmp_path, pki), context) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
    ):
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Basic"
        async with http.get(f"{url}/metrics", headers=basic(USER, "wrong")) as response:
            assert response.status == 401
        async with http.get(f"{url}/metrics", headers=basic("mallory", PASSWORD)) as response:
            assert response.status == 401
        for _ in range(3):  # the second and third are answered from the cache
            async with http.get(f"{url}/metrics", headers=BASIC) as response:
                assert response.status == 200
                assert "tradeops_exporter_build_info" in await response.text()
        async with http.get(f"{url}/-/ready") as response:
            assert response.status == 401
        async with http.get(f"{url}/-/healthy") as response:
            assert response.status == 200  # liveness stays open


async def test_the_exporters_reload_needs_the_web_config_user_as_well_as_the_lifecycle_flag(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    context = client_context(pki)
    async with (
        exporter(tmp_path, web_config(tmp_path, pki), context) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
    ):
        async with http.post(f"{url}/-/reload") as response:
            assert response.status == 401
        async with http.post(f"{url}/-/reload", headers=BASIC) as response:
            assert response.status == 200


async def test_a_plain_http_client_gets_no_answer_from_the_tls_listener(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    async with (
        exporter(tmp_path, web_config(tmp_path, pki), client_context(pki)) as url,
        aiohttp.ClientSession() as plain,
    ):
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(url.replace("https://", "http://") + "/-/healthy") as response:
                await response.read()


async def test_a_client_certificate_is_required_when_client_auth_type_says_so(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    web = web_config(
        tmp_path, pki, users=False, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca_cert)
    )
    with_cert = client_context(pki, with_client_cert=True)
    async with exporter(tmp_path, web, with_cert) as url:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(pki))) as anonymous:
            with pytest.raises(aiohttp.ClientError):
                async with anonymous.get(f"{url}/metrics") as response:
                    await response.read()
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as http,
            http.get(f"{url}/metrics") as response,
        ):
            assert response.status == 200


@contextlib.asynccontextmanager
async def remediator(
    tmp_path: Path, web: Path, context: ssl.SSLContext, token: str | None = TOKEN
) -> AsyncIterator[str]:
    """Run tradeops-remediator (webhook token TOKEN, one log rule) with the web config; yield its https URL."""
    config = tmp_path / "remediator.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "audit_path": str(tmp_path / "audit.db"),
                "rules": [{"name": "log-it", "matchers": ['alertname="StrategyGenerationStalled"'], "action": "log"}],
            }
        )
    )
    port = free_port()
    argv = [sys.executable, "-m", "remediator.main", "--config.file", str(config), "--web.config.file", str(web)]
    argv += ["--web.listen-address", f"127.0.0.1:{port}"]
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "remediator.log"
    async with process(argv, log, env=clean_env(**({"TRADEOPS_WEBHOOK_TOKEN": token} if token else {}))):
        await wait_https(f"{url}/-/healthy", context, log)
        yield url


async def test_the_remediator_accepts_a_basic_auth_user_and_still_the_token_on_the_webhook(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    context = client_context(pki)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        remediator(tmp_path, web_config(tmp_path, pki), context) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
    ):
        async with http.post(f"{url}/webhook", json=payload(alert()), headers=bearer) as response:
            assert response.status == 200
        async with http.post(f"{url}/webhook", json=payload(alert()), headers=BASIC) as response:
            assert response.status == 200
        async with http.post(f"{url}/webhook", json=payload(alert())) as response:
            assert response.status == 401
        async with http.get(f"{url}/api/v1/remediations", headers=BASIC) as response:
            assert response.status == 200
            assert "remediations" in await response.json()
        async with http.get(f"{url}/api/v1/remediations", headers=bearer) as response:
            assert response.status == 200
        async with http.get(f"{url}/api/v1/remediations", headers=basic(USER, "wrong")) as response:
            assert response.status == 401
        async with http.get(f"{url}/api/v1/remediations") as response:
            assert response.status == 401


async def test_a_remediator_with_basic_auth_users_and_no_token_starts_and_guards_its_webhook(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    context = client_context(pki)
    web = web_config(tmp_path, pki)
    data = yaml.safe_load(web.read_text())
    data["http_server_config"] = {"headers": {"X-Content-Type-Options": "nosniff"}}
    web.write_text(yaml.safe_dump(data))
    async with (
        remediator(tmp_path, web, context, token=None) as url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
    ):
        async with http.post(f"{url}/webhook", json=payload(alert())) as response:
            assert response.status == 401
        async with http.post(
            f"{url}/webhook", json=payload(alert()), headers={"Authorization": "Bearer x"}
        ) as response:
            assert response.status == 401
        async with http.post(f"{url}/webhook", json=payload(alert()), headers=BASIC) as response:
            assert response.status == 200
            assert response.headers["X-Content-Type-Options"] == "nosniff"
