"""Running one of the services: serve an app until a signal, reload on SIGHUP, exit codes for the CLI."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from aiohttp import web

from common.logs import log_event
from common.web import PortInUseError, start_site

logger = logging.getLogger("tradeops.service")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel background tasks and wait until each has finished."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)  # a cancel of this wait itself still propagates


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    name: str,
    on_reload: Callable[[], Awaitable[object]],
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve the app until SIGINT or SIGTERM; SIGHUP calls on_reload. Always cleans the app up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await start_site(runner, host, port, ssl_context=ssl_context)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        reloads: set[asyncio.Task[None]] = set()  # referenced until done, so none is collected mid-reload

        def reload_on_signal() -> None:
            task = asyncio.create_task(_logged_reload(on_reload, name))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
        log_event(logger, logging.INFO, "listening", service=name, address=f"{host}:{port}")
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await cancel_and_wait(reloads)
    finally:
        await runner.cleanup()


async def _logged_reload(on_reload: Callable[[], Awaitable[object]], name: str) -> None:
    """Run one SIGHUP reload; a failure is logged, never raised into the event loop."""
    try:
        await on_reload()
    except Exception as error:  # noqa: BLE001 - a signal's task is a process boundary: log, keep serving
        log_event(logger, logging.ERROR, "reload_failed", service=name, error=f"{type(error).__name__}: {error}")


# Young-generation collections every this many allocations instead of 700: a service allocates thousands of
# short-lived objects per request (a webhook payload's alerts, a scrape's samples), and each collection also
# walks the objects kept alive in between (the alerts being decided, the pools). Measured in docs/benchmarks.md.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Move what start-up created out of the collector's sight and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def run_service(name: str, main: Coroutine[Any, Any, None]) -> int:
    """Run a service's main coroutine; a taken port exits 1 with a clear message, Ctrl-C exits 0."""
    tune_gc()
    try:
        asyncio.run(main)
    except PortInUseError as error:
        log_event(logger, logging.ERROR, "cannot_start", service=name, error=str(error))
        return 1
    except KeyboardInterrupt:
        pass
    return 0
