"""SIGHUP reloads a serving service: each reload task is kept until it ends, and a failing one is logged,
never raised into the event loop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

import pytest
from aiohttp import web

from common.service import serve_until_stopped
from common.web import free_port


async def test_a_failing_sighup_reload_is_logged_and_the_service_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    finished = asyncio.Event()
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))

    async def on_reload() -> None:
        calls.append("reload")
        await asyncio.sleep(0)
        gc.collect()  # a task nobody references could be collected here, mid-reload
        await asyncio.sleep(0)
        finished.set()
        raise RuntimeError("the new file could not be applied")

    port = free_port()
    serving = asyncio.create_task(serve_until_stopped(web.Application(), "127.0.0.1", port, "test-service", on_reload))
    for _ in range(200):  # until the listener (and so the signal handlers) is up
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        break
    with caplog.at_level(logging.ERROR):
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(finished.wait(), 10)
        for _ in range(100):
            if any(record.getMessage() == "reload_failed" for record in caplog.records):
                break
            await asyncio.sleep(0.01)
    assert calls == ["reload"]
    failed = [record for record in caplog.records if record.getMessage() == "reload_failed"]
    assert failed, "a failing SIGHUP reload was not logged"
    assert "the new file could not be applied" in str(failed[0].__dict__.get("context"))
    assert not serving.done()  # still serving
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 10)
    gc.collect()
    assert loop_errors == []
