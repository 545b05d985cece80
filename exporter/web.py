"""The exporter's HTTP endpoints: /metrics (a fresh registry per scrape), health, readiness and reload."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from common.config import ConfigError
from common.logs import log_event
from common.version import build_info
from common.web import healthy, json_error, metrics_response
from common.webconfig import WebConfig, web_config_middlewares
from exporter.config import ExporterConfig, load
from exporter.probeset import ProbeSet, build_probe_set
from exporter.scrape import FailureCounts, ScrapeCollector

logger = logging.getLogger("exporter")
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@dataclass
class ReloadStatus:
    """The outcome of the last configuration (re)load, exported like Prometheus' own."""

    successful: bool = True
    timestamp: float = field(default_factory=time.time)
    error: str = ""


@dataclass
class Exporter:
    """The running exporter: the current probe set, reloadable from its config file."""

    config_path: Path | None
    probe_set: ProbeSet
    failures: FailureCounts = field(default_factory=FailureCounts)
    reload_status: ReloadStatus = field(default_factory=ReloadStatus)
    loader: Callable[[Path], ExporterConfig] = load
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self) -> ReloadStatus:
        """Re-read the config file; an invalid one keeps the running probes and records why."""
        async with self._reload_lock:
            if self.config_path is None:
                return self.reload_status
            try:
                config = self.loader(self.config_path)
            except ConfigError as error:
                self.reload_status = ReloadStatus(False, time.time(), error.render())
                log_event(logger, logging.ERROR, "reload_failed", error=error.render())
                return self.reload_status
            old, self.probe_set = self.probe_set, build_probe_set(config)
            self.reload_status = ReloadStatus(True, time.time())
            log_event(logger, logging.INFO, "reloaded", probes=len(self.probe_set.probes))
            await old.close()
            return self.reload_status

    def budget(self, header: str | None) -> float:
        """Return the time probes may take: the scrape timeout header (or the default) minus the margin."""
        settings = self.probe_set.config.exporter
        timeout = settings.default_scrape_timeout_seconds
        if header:
            try:
                parsed = float(header)
            except ValueError:
                parsed = timeout
            if 0 < parsed < 3600:
                timeout = parsed
        return max(0.05, timeout - min(settings.scrape_timeout_margin_seconds, timeout / 4))


@dataclass(eq=False)
class ExporterInfoCollector(Collector):
    """Build info and config reload status."""

    reload_status: ReloadStatus

    def collect(self) -> list[Metric]:
        """Return tradeops_exporter_build_info and the reload gauges."""
        info = InfoMetricFamily(
            "tradeops_exporter_build", "1, labelled with the exporter's version, revision and Python."
        )
        info.add_metric([], build_info().labels())
        ok = GaugeMetricFamily(
            "tradeops_exporter_config_last_reload_successful", "1 when the last configuration load succeeded."
        )
        ok.add_metric([], 1.0 if self.reload_status.successful else 0.0)
        when = GaugeMetricFamily(
            "tradeops_exporter_config_last_reload_timestamp_seconds", "When the configuration was last loaded."
        )
        when.add_metric([], self.reload_status.timestamp)
        return [info, ok, when]


EXPORTER = web.AppKey("exporter", Exporter)
LIFECYCLE = web.AppKey("lifecycle", bool)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: every probe's outcome within the scrape timeout, from the round in progress when another scrape
    started one (single flight), else from a new round; the metrics go into a fresh registry for this request."""
    exporter = request.app[EXPORTER]
    probe_set = exporter.probe_set
    probe_set.enter()
    try:
        started = time.perf_counter()
        outcomes = await probe_set.rounds.outcomes(
            exporter.budget(request.headers.get(SCRAPE_TIMEOUT_HEADER)), exporter.failures
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ScrapeCollector(outcomes, exporter.failures))
        registry.register(ExporterInfoCollector(exporter.reload_status))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        duration = GaugeMetricFamily(
            "tradeops_exporter_scrape_duration_seconds",
            "Time this scrape waited for probe outcomes (its own round, or the one in progress it joined).",
        )
        duration.add_metric([], time.perf_counter() - started)
        registry.register(_Static([duration]))
        return metrics_response(registry)
    finally:
        probe_set.leave()


@dataclass(eq=False)
class _Static(Collector):
    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


async def ready(request: web.Request) -> web.Response:
    """GET /-/ready: 200 once a valid configuration is loaded (always, after start-up)."""
    return web.Response(text="Ready.\n")


async def reload(request: web.Request) -> web.Response:
    """POST /-/reload: 403 unless --web.enable-lifecycle (and, with basic_auth_users in the web config, 401 without
    a valid user, like every endpoint but /-/healthy); reload the configuration; 500 with the located errors when
    the new file is invalid."""
    if not request.app[LIFECYCLE]:
        return json_error(403, "Lifecycle API is not enabled.")
    status = await request.app[EXPORTER].reload()
    if not status.successful:
        return json_error(500, "configuration invalid; keeping the previous one", details=status.error.splitlines())
    return web.json_response({"status": "reloaded"})


def build_app(
    exporter: Exporter, enable_lifecycle: bool = False, web_config: WebConfig | None = None
) -> web.Application:
    """Build the exporter's aiohttp application around an Exporter; POST /-/reload answers 403 unless
    enable_lifecycle (--web.enable-lifecycle). With basic_auth_users in web_config, every endpoint but /-/healthy
    (/metrics and /-/reload too) answers 401 without a valid user."""
    app = web.Application(middlewares=web_config_middlewares(web_config, required=True))
    app[EXPORTER] = exporter
    app[LIFECYCLE] = enable_lifecycle

    async def close_probes(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[EXPORTER].probe_set.close()

    app.cleanup_ctx.append(close_probes)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    return app
