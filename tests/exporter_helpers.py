"""Helpers for exporter tests: write a config, serve the exporter in-process and backends for it to probe, scrape
and parse."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load
from exporter.probeset import build_probe_set
from exporter.web import Exporter, build_app
from tests.processes import served

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
    async with served(build_app(exporter, lifecycle)) as url:
        yield url, exporter


@asynccontextmanager
async def answering(answers: Mapping[str, object]) -> AsyncIterator[str]:
    """A loopback backend for probes; yield its base URL. Each GET path answers as `answers` holds at the time:
    bytes as a JSON body, a web.Response (once: a response is sent only once), or what its handler returns; any
    other path 404."""

    async def handler(request: web.Request) -> web.StreamResponse:
        answer = answers.get(request.path)
        if answer is None:
            return web.Response(status=404, text="not found")
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="application/json")
        if isinstance(answer, web.StreamResponse):
            return answer
        assert callable(answer)
        result: web.StreamResponse = await answer(request)
        return result

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    async with served(app) as url:
        yield url


async def scrape_probes(tmp_path: Path, probes: dict[str, Any]) -> Samples:
    """Serve an exporter for these probes (its config written in tmp_path), scrape it once and parse the samples."""
    async with running_exporter(write_config(tmp_path, probes)) as (url, _):
        return parse(await scrape_text(url))


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
