"""Helpers for exporter tests: write a config, serve the exporter in-process, scrape and parse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from common.web import free_port
from exporter.config import load
from exporter.probeset import build_probe_set
from exporter.web import Exporter, build_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def write_config(tmp_path: Path, probes: dict[str, Any], **exporter: Any) -> Path:
    """Write an exporter config file with the given probes and exporter settings."""
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"exporter": exporter, "probes": probes}))
    return path


@asynccontextmanager
async def running_exporter(config_path: Path, lifecycle: bool = False) -> AsyncIterator[tuple[str, Exporter]]:
    """Serve an exporter for the config on a free loopback port (POST /-/reload only with lifecycle); yield its
    base URL and the Exporter."""
    exporter = Exporter(config_path, build_probe_set(load(config_path)))
    runner = web.AppRunner(build_app(exporter, lifecycle))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", exporter
    finally:
        await runner.cleanup()


async def scrape_text(base_url: str, scrape_timeout: float | None = None) -> str:
    """GET /metrics (with the Prometheus scrape-timeout header when given) and return the body."""
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(scrape_timeout)} if scrape_timeout else {}
    client_timeout = (scrape_timeout or 10) + 5
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=client_timeout)) as session,
        session.get(f"{base_url}/metrics", headers=headers) as response,
    ):
        assert response.status == 200
        return await response.text()


def parse(text: str) -> Samples:
    """Parse exposition text into {(sample name, labels): value}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return the value of the one sample with this name and these labels (raises KeyError if absent)."""
    return samples[(name, frozenset(labels.items()))]


def has(samples: Samples, name: str, **labels: str) -> bool:
    """Return whether a sample with this name and exactly these labels exists."""
    return (name, frozenset(labels.items())) in samples
