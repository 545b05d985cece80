"""Both services' /metrics carry a _build_info gauge of 1 labelled with version, revision and python_version."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from common.version import build_info
from tests.exporter_helpers import parse, running_exporter, scrape_text, value, write_config
from tests.remediator_helpers import config, remediator_client


def test_build_info_labels_are_version_revision_and_python() -> None:
    assert set(build_info().labels()) == {"version", "revision", "python_version"}


async def test_the_exporters_metrics_carry_its_build_info(tmp_path: Path) -> None:
    async with running_exporter(write_config(tmp_path, {})) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_exporter_build_info", **build_info().labels()) == 1


async def test_the_remediators_metrics_carry_its_build_info(tmp_path: Path) -> None:
    async with remediator_client(config(tmp_path, "http://127.0.0.1:9")) as (client, _):
        response = await client.get("/metrics")
        assert response.status == 200
        text = await response.text()
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == "tradeops_remediator_build_info")
    assert family.type == "gauge"
    ((sample),) = family.samples
    assert sample.labels == build_info().labels()
    assert sample.value == 1
