"""A real remediator process started with --log.format=json writes nothing to stderr but one JSON object per
line, even for multi-line errors and hostile label values, and never its token; failing probes against real
backends never log the passwords in their DSNs and URLs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from common.logs import JsonFormatter, LogfmtFormatter
from common.web import free_port
from exporter.config import ExporterConfig
from exporter.probeset import build_probe_set
from exporter.scrape import FailureCounts, scrape
from tests.processes import wait_http
from tests.remediator_helpers import TOKEN, alert, payload

pytestmark = pytest.mark.integration


async def test_a_remediator_with_log_format_json_writes_one_json_object_per_line_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = tmp_path / "remediator.yml"
    good = {
        "webhook_token_file": str(tmp_path / "token"),
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "rules": [{"name": "first", "matchers": ['alertname="First"'], "action": "log"}],
    }
    config.write_text(yaml.safe_dump(good))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    argv = [sys.executable, "-m", "remediator.main", "--config.file", str(config), "--log.format=json"]
    argv += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", "debug"]
    with (tmp_path / "stderr").open("wb") as stderr, (tmp_path / "stdout").open("wb") as stdout:
        child = await asyncio.create_subprocess_exec(*argv, stdout=stdout, stderr=stderr, env=env)
        try:
            await wait_http(f"{url}/-/ready")
            hostile = alert(name="First", instance='a b\n"c"=d level=error \x00 ünï')
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/webhook", json=payload(hostile), headers=headers) as response:
                    assert response.status == 200
                for _ in range(100):  # the decision is logged once it is taken
                    if b"decision" in (tmp_path / "stderr").read_bytes():
                        break
                    await asyncio.sleep(0.1)
            # A broken file makes a reload fail with located, multi-line errors; the old config stays.
            config.write_text(yaml.safe_dump({**good, "colour": "red", "limits": {"concurrency": "x"}}))
            child.send_signal(signal.SIGHUP)
            for _ in range(100):
                if b"reload_failed" in (tmp_path / "stderr").read_bytes():
                    break
                await asyncio.sleep(0.1)
        finally:
            child.send_signal(signal.SIGTERM)
            await asyncio.wait_for(child.wait(), 30)
    text = (tmp_path / "stderr").read_text()
    assert TOKEN not in text
    lines = text.splitlines()
    assert lines, "nothing logged"
    events = []
    for line in lines:
        document = json.loads(line)  # raises on any line that is not one JSON value
        assert isinstance(document, dict), line
        assert list(document)[:3] == ["ts", "level", "msg"], line
        events.append(document["msg"])
    assert "decision" in events
    failed = next(json.loads(line) for line in lines if json.loads(line)["msg"] == "reload_failed")
    assert "colour" in failed["error"]
    assert "\n" in failed["error"]  # the located errors kept their line breaks inside the one object


async def test_failing_probes_never_log_the_passwords_in_their_dsns_and_urls() -> None:
    dead = free_port()
    config = ExporterConfig.model_validate(
        {
            "probes": {
                "postgres": [{"name": "p", "dsn": f"postgresql://postgres:pgHUNTER2@127.0.0.1:{dead}/x"}],
                "redis": [
                    {"name": "dead", "url": f"redis://:rdHUNTER2@127.0.0.1:{dead}/0"},
                    {"name": "wrong", "url": "redis://:rdHUNTER2@127.0.0.1:6379/0"},  # real Redis, no auth set
                ],
                "rabbitmq": [
                    {"name": "dead", "amqp_url": f"amqp://guest:mqHUNTER2@127.0.0.1:{dead}/", "queues": ["q"]},
                    {"name": "wrong", "amqp_url": "amqp://guest:mqHUNTER2@127.0.0.1:5672/", "queues": ["q"]},
                    {"name": "api", "management_url": "http://127.0.0.1:15672/", "password": "mgHUNTER2"},
                ],
            }
        }
    )
    streams = [io.StringIO(), io.StringIO()]
    handlers = [logging.StreamHandler(stream) for stream in streams]
    handlers[0].setFormatter(LogfmtFormatter())
    handlers[1].setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        probe_set = build_probe_set(config)
        outcomes = await scrape(probe_set.probes, 10, FailureCounts())
        await probe_set.close()
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)
    failed = [outcome for outcome in outcomes if not outcome.success]
    assert len(failed) >= 4  # the dead ports and the refused RabbitMQ login at least
    for stream in streams:
        text = stream.getvalue()
        assert text.count("probe_failed") == len(failed)
        assert "HUNTER2" not in text
