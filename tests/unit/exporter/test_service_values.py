"""The shipped ai-trading target for seed 002's `curl :8001/data/status` (market-data freshness): the exporter
reads the collector's last-update timestamp, and no hostile answer yields a bogus one."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.exporter_helpers import parse, running_exporter, scrape_text, value, write_config
from tests.processes import served

ROOT = Path(__file__).parents[3]
FIELD = "last_update_timestamp"


@pytest.fixture
async def collector() -> AsyncIterator[tuple[int, dict[str, bytes]]]:
    """A loopback stand-in for the data collector whose /data/status body each test sets."""
    answer: dict[str, bytes] = {}

    async def status(request: web.Request) -> web.Response:
        return web.Response(body=answer["body"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/data/status", status)
    async with served(app) as url:
        yield int(url.rpartition(":")[2]), answer


def shipped_target(port: int) -> dict[str, Any]:
    """The ai-trading profile's data_collector_status target, pointed at the stand-in."""
    text = (ROOT / "deploy/profiles/ai-trading/exporter.yml").read_text()
    probes = yaml.safe_load(re.sub(r"127\.0\.0\.1:8001\b", f"127.0.0.1:{port}", text))["probes"]
    (found,) = [t for t in probes["service_health"] if t["name"] == "data_collector_status"]
    return dict(found)


async def scrape_status(tmp_path: Path, port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    config = write_config(tmp_path, {"service_health": [shipped_target(port)]}, max_response_bytes=1 << 20)
    async with running_exporter(config) as (url, _):
        return parse(await scrape_text(url))


async def test_the_collectors_last_update_is_read_as_a_number(
    tmp_path: Path, collector: tuple[int, dict[str, bytes]]
) -> None:
    port, answer = collector
    answer["body"] = b'{"status": "ok", "last_update": 1764650000.5, "symbols": 12}'
    samples = await scrape_status(tmp_path, port)
    assert value(samples, "tradeops_service_value", service="data_collector_status", field=FIELD) == 1764650000.5
    assert value(samples, "tradeops_service_up", service="data_collector_status", criticality="critical") == 1


@pytest.mark.parametrize(
    ("body", "probe_success"),
    [
        (b"{not json at all", 0),
        (b'{"status": "ok", "pad": "' + b"x" * (2 << 20) + b'", "last_update": 1764650000}', 0),
        (b'{"status": "ok"}', 1),
        (b'{"status": "ok", "last_update": "2026-12-02T04:00:00Z"}', 1),
        (b'{"status": "ok", "last_update": "1764650000"}', 1),
        (b'{"status": "ok", "last_update": true}', 1),
        (b'{"status": "ok", "last_update": null}', 1),
        (b'{"status": "ok", "last_update": NaN}', 1),
        (b'{"status": "ok", "last_update": 1e400}', 1),
        (b'{"status": "ok", "last_update": [1764650000]}', 1),
        (b'{"status": "ok", "last_update": {"ts": 1764650000}}', 1),
        (b"[1764650000]", 1),
    ],
    ids=[
        "garbage",
        "huge",
        "missing",
        "iso-string",
        "numeric-string",
        "bool",
        "null",
        "nan",
        "inf",
        "list",
        "object",
        "array",
    ],
)
async def test_a_hostile_data_status_gives_no_last_update(
    tmp_path: Path, collector: tuple[int, dict[str, bytes]], body: bytes, probe_success: int
) -> None:
    port, answer = collector
    answer["body"] = body
    samples = await scrape_status(tmp_path, port)
    assert not [labels for name, labels in samples if name == "tradeops_service_value"]
    assert value(samples, "tradeops_probe_success", probe="service_health", target="data_collector_status") == (
        probe_success
    )
