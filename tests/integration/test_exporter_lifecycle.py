"""The exporter's lifecycle API against a real process: POST /-/reload only with --web.enable-lifecycle (its
only guard until web-config auth); SIGHUP reloads either way."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from common.web import free_port
from tests.exporter_helpers import has, parse, scrape_text, write_config
from tests.processes import process, wait_http

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def exporter(tmp_path: Path, *flags: str) -> AsyncIterator[str]:
    """Run tradeops-exporter on a one-probe config; yield its URL."""
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    script = shutil.which("tradeops-exporter")
    port = free_port()
    argv = [*([script] if script else [sys.executable, "-m", "exporter.main"]), "--config.file", str(config)]
    argv += ["--web.listen-address", f"127.0.0.1:{port}", *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    url = f"http://127.0.0.1:{port}"
    async with process(argv, tmp_path / "exporter.log", env=env):
        await wait_http(f"{url}/-/ready")
        yield url


async def test_without_the_lifecycle_flag_the_exporter_refuses_reload_and_keeps_its_probes(tmp_path: Path) -> None:
    async with exporter(tmp_path) as url, aiohttp.ClientSession() as http:
        write_config(tmp_path, {"backups": [{"name": "second", "path_glob": f"{tmp_path}/*.gz"}]})
        for method in (http.post, http.put):
            async with method(f"{url}/-/reload") as response:
                assert response.status == 403
                assert (await response.json())["error"] == "Lifecycle API is not enabled."
        samples = parse(await scrape_text(url))
        assert has(samples, "tradeops_backup_files", set="first")
        assert not has(samples, "tradeops_backup_files", set="second")


async def test_with_the_lifecycle_flag_the_exporter_reloads(tmp_path: Path) -> None:
    async with exporter(tmp_path, "--web.enable-lifecycle") as url, aiohttp.ClientSession() as http:
        write_config(tmp_path, {"backups": [{"name": "second", "path_glob": f"{tmp_path}/*.gz"}]})
        async with http.post(f"{url}/-/reload") as response:
            assert response.status == 200
        samples = parse(await scrape_text(url))
        assert has(samples, "tradeops_backup_files", set="second")
