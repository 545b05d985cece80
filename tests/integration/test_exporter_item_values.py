"""Per-item numbers from a real HTTP health document (service_health `item_values`: a rate gate's per-provider
quotas, seed 004 Rate Limiting Issues) and from a real `pm2 jlist`-shaped command (per-process memory, seed 004
High Memory Usage), with the hostile answers every probe gets: garbage, a huge body, missing fields, text,
booleans and a backend that hangs."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from common.web import free_port
from tests.exporter_helpers import answering, parse, running_exporter, scrape_text, value, write_config

pytestmark = pytest.mark.integration

QUOTAS = {"list_path": "providers", "label_field": "name", "value_fields": {"remaining": "remaining", "limit": "limit"}}


@pytest.fixture
async def gate() -> AsyncIterator[tuple[str, dict[str, bytes]]]:
    """A loopback rate gate whose /status answers each test sets."""
    answers: dict[str, bytes] = {}
    async with answering(answers) as url:
        yield url, answers


def target(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "status_path": None, "item_values": QUOTAS, **extra}


def items(samples: dict[Any, float], service: str) -> dict[tuple[str, str], float]:
    found = {}
    for (name, labels), sample in samples.items():
        labelled = dict(labels)
        if name == "tradeops_service_item_value" and labelled["service"] == service:
            found[(labelled["item"], labelled["field"])] = sample
    return found


async def test_item_values_reads_each_providers_numbers_from_a_list_or_an_object_and_skips_non_numbers(
    tmp_path: Path, gate: tuple[str, dict[str, bytes]]
) -> None:
    base, answers = gate
    answers["/list"] = (
        b'{"state": "ok", "providers": [{"name": "alphavantage", "remaining": 0, "limit": 500},'
        b' {"name": "polygon", "remaining": 120.5, "limit": "5000"}, {"name": "flag", "remaining": true},'
        b' {"name": "nan", "remaining": NaN}, {"remaining": 3}, {"name": {"nested": 1}, "remaining": 4}, 7, null]}'
    )
    answers["/object"] = b'{"providers": {"alphavantage": {"remaining": 9, "limit": 25}, "bad": "text"}}'
    config = write_config(
        tmp_path,
        {
            "service_health": [
                target("list", f"{base}/list"),
                target("object", f"{base}/object"),
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert items(samples, "list") == {
        ("alphavantage", "remaining"): 0,
        ("alphavantage", "limit"): 500,
        ("polygon", "remaining"): 120.5,
    }
    assert items(samples, "object") == {("alphavantage", "remaining"): 9, ("alphavantage", "limit"): 25}
    for service in ("list", "object"):
        assert value(samples, "tradeops_probe_success", probe="service_health", target=service) == 1


async def test_item_values_with_a_missing_or_wrong_list_leaves_the_items_out_and_the_health_stands(
    tmp_path: Path, gate: tuple[str, dict[str, bytes]]
) -> None:
    base, answers = gate
    answers["/missing"] = b'{"state": "ok"}'
    answers["/number"] = b'{"providers": 5}'
    answers["/array"] = b"[1, 2, 3]"
    config = write_config(
        tmp_path, {"service_health": [target(name, f"{base}/{name}") for name in ("missing", "number", "array")]}
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    for name in ("missing", "number", "array"):
        assert items(samples, name) == {}
        assert value(samples, "tradeops_probe_success", probe="service_health", target=name) == 1
        assert value(samples, "tradeops_service_up", service=name, criticality="high") == 1


async def test_item_values_are_capped_at_max_items_and_the_rest_counted_as_dropped(
    tmp_path: Path, gate: tuple[str, dict[str, bytes]]
) -> None:
    base, answers = gate
    body = ",".join(f'{{"name": "p{n:04d}", "remaining": {n}, "limit": 10}}' for n in range(1000))
    answers["/many"] = ('{"providers": [' + body + "]}").encode()
    config = write_config(tmp_path, {"service_health": [target("many", f"{base}/many", max_items=10)]})
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert {item for item, _ in items(samples, "many")} == {f"p{n:04d}" for n in range(10)}  # the first ten
    assert len(items(samples, "many")) == 20
    assert value(samples, "tradeops_probe_series_dropped", probe="service_health", target="many") == 1980


async def test_item_values_on_garbage_a_huge_body_a_refused_or_a_hanging_gate_fail_the_probe_in_time(
    tmp_path: Path, gate: tuple[str, dict[str, bytes]], hanging_port: int
) -> None:
    base, answers = gate
    answers["/garbage"] = b"{not json"
    answers["/huge"] = b'{"providers": [{"name": "a", "remaining": 1, "pad": "' + b"x" * 5_000_000 + b'"}]}'
    config = write_config(
        tmp_path,
        {
            "service_health": [
                {**target("garbage", f"{base}/garbage"), "status_path": "state"},
                target("huge", f"{base}/huge"),
                target("refused", f"http://127.0.0.1:{free_port()}/status"),
                target("hang", f"http://127.0.0.1:{hanging_port}/status", timeout_seconds=30),
            ]
        },
        scrape_timeout_margin_seconds=0.5,
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url, scrape_timeout=2))  # an answer at all proves the bound
    for name, reason in (
        ("garbage", "bad_json"),
        ("huge", "too_large"),
        ("refused", "connection"),
        ("hang", "timeout"),
    ):
        assert items(samples, name) == {}
        assert value(samples, "tradeops_probe_success", probe="service_health", target=name) == 0
        assert value(samples, "tradeops_probe_failures_total", probe="service_health", target=name, reason=reason) == 1


def jlist(tmp_path: Path, name: str, script: str) -> list[str]:
    """A stand-in `pm2 jlist` that runs `script` (Python) and prints what it prints."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(script))
    return [sys.executable, str(path)]


PM2_MEMORY = {"label_field": "name", "value_fields": {"memory": "monit.memory", "restart_time": "pm2_env.restart_time"}}


async def test_pm2_memory_per_process_and_hostile_jlist_output_fail_or_leave_out_only_what_is_wrong(
    tmp_path: Path,
) -> None:
    good = """\
        import json
        print(json.dumps([
            {"name": "trading-engine", "pm2_env": {"restart_time": 2}, "monit": {"memory": 734003200, "cpu": 3}},
            {"name": "no-monit", "pm2_env": {"restart_time": 0}},
            {"name": "text", "pm2_env": {"restart_time": 0}, "monit": {"memory": "700MB"}},
            {"name": "bool", "pm2_env": {"restart_time": 0}, "monit": {"memory": True}},
        ]))
        """
    probes = {
        "good": good,
        "garbage": "print('[{not json')",
        "huge": "import sys; sys.stdout.write('[' + '1,' * 3_000_000 + '1]')",
        "object": 'print(\'{"name": "trading-engine"}\')',
        "hang": "import time; time.sleep(60)",
    }
    config = write_config(
        tmp_path,
        {
            "command": [
                {
                    "name": name,
                    "argv": jlist(tmp_path, name, script),
                    "output": "json",
                    "json_values": PM2_MEMORY,
                    "max_output_bytes": 1024 * 1024,
                    "timeout_seconds": 3,
                }
                for name, script in probes.items()
            ]
        },
        scrape_timeout_margin_seconds=0.5,
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url, scrape_timeout=5))  # an answer at all proves the bound
    assert value(samples, "tradeops_command_value", command="good", item="trading-engine", field="memory") == 734003200
    memory = {
        dict(labels)["item"]
        for name, labels in samples
        if name == "tradeops_command_value" and dict(labels)["field"] == "memory"
    }
    assert memory == {"trading-engine"}  # no monit, text and bool are left out, never 0
    assert value(samples, "tradeops_command_value", command="good", item="bool", field="restart_time") == 0
    assert value(samples, "tradeops_probe_success", probe="command", target="good") == 1
    for name, reason in (
        ("garbage", "bad_output"),
        ("huge", "too_large"),
        ("object", "bad_output"),
        ("hang", "timeout"),
    ):
        assert value(samples, "tradeops_probe_success", probe="command", target=name) == 0
        assert value(samples, "tradeops_probe_failures_total", probe="command", target=name, reason=reason) == 1


async def test_a_jlist_longer_than_the_pipes_buffer_is_read_whole(tmp_path: Path) -> None:
    # pm2 jlist prints each process's whole environment: a few processes exceed the 64 KiB a pipe holds.
    script = """\
        import json
        processes = [{"name": f"p{n}", "pm2_env": {"env": "x" * 300}, "monit": {"memory": n}} for n in range(1000)]
        print(json.dumps(processes))
        """
    config = write_config(
        tmp_path,
        {
            "command": [
                {
                    "name": "long",
                    "argv": jlist(tmp_path, "long", script),
                    "output": "json",
                    "json_values": {"value_fields": {"memory": "monit.memory"}},
                    "max_series": 5000,
                    "timeout_seconds": 5,
                }
            ]
        },
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url))
    assert value(samples, "tradeops_probe_success", probe="command", target="long") == 1
    assert value(samples, "tradeops_command_value", command="long", item="p999", field="memory") == 999


async def test_a_command_whose_background_child_holds_its_output_fails_in_time_and_the_child_is_killed(
    tmp_path: Path,
) -> None:
    # A stand-in that prints its list and leaves a child holding stdout open (a daemon that did not detach).
    pid_file = tmp_path / "child.pid"
    argv = ["/bin/sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo '[]'"]
    config = write_config(
        tmp_path,
        {"command": [{"name": "bg", "argv": argv, "output": "json", "json_values": PM2_MEMORY, "timeout_seconds": 1}]},
        scrape_timeout_margin_seconds=0.5,
    )
    async with running_exporter(config) as (url, _):
        samples = parse(await scrape_text(url, scrape_timeout=3))
        assert value(samples, "tradeops_probe_failures_total", probe="command", target="bg", reason="timeout") == 1
        child = int(pid_file.read_text())
        for _ in range(50):
            if not Path(f"/proc/{child}").exists():
                break
            await asyncio.sleep(0.1)
        assert not Path(f"/proc/{child}").exists(), "the command's background child outlived its probe"
