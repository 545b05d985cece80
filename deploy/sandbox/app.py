"""Running a sandbox: its simulated services, the chaos API and the loops that keep them in step."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

from aiohttp import web

from common.logs import log_event
from common.service import cancel_and_wait
from common.web import start_site
from sandbox import backups, consumers, containers, generation, pm2_services, standins
from sandbox.backends import Backends, BackendUnavailableError
from sandbox.chaos import Chaos, build_chaos_app
from sandbox.context import SandboxContext
from sandbox.faults import declare_or_reuse, resume_if_restarted
from sandbox.platform import PlatformState
from sandbox.profiles import PROFILES, collector_names
from sandbox.services import build_service_app
from sandbox.settings import SandboxSettings

logger = logging.getLogger("sandbox")
RECONCILE_INTERVAL = 0.5


@dataclass
class Sandbox:
    """One running simulated platform; start() brings it up, stop() leaves nothing behind."""

    settings: SandboxSettings
    ctx: SandboxContext = field(init=False)
    chaos: Chaos = field(init=False)
    _runners: dict[str, web.AppRunner] = field(default_factory=dict, init=False)
    _control: web.AppRunner | None = field(default=None, init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _reconciler: asyncio.Task[None] | None = field(default=None, init=False)
    _reconcile_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        if self.settings.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.settings.profile!r}; known: {', '.join(sorted(PROFILES))}")
        profile = PROFILES[self.settings.profile]
        unknown = (set(self.settings.ports) | set(self.settings.containers)) - {s.name for s in profile.services}
        if unknown:
            raise ValueError(f"unknown service(s) {', '.join(sorted(unknown))} for profile {profile.name}")
        state = PlatformState.create(
            tuple(s.name for s in profile.services),
            collector_names(profile, self.settings.collectors),
            profile.circuit_breakers,
        )
        backends = Backends(
            self.settings.postgres_dsn,
            self.settings.redis_url,
            self.settings.amqp_url,
            self.settings.docker_host,
        )
        self.ctx = SandboxContext(
            profile,
            state,
            backends,
            self.settings.backup_root,
            dict(self.settings.containers),
            self.settings.image,
        )
        self.chaos = Chaos(self.ctx, after_change=self.reconcile)

    def port_of(self, service: str) -> int:
        """Return the port a simulated service listens on."""
        spec = next(s for s in self.ctx.profile.services if s.name == service)
        return self.settings.ports.get(service, spec.port)

    def urls(self) -> dict[str, str]:
        """Return the base URL of every simulated service and of the chaos API."""
        host = self.settings.host
        result = {s.name: f"http://{host}:{self.port_of(s.name)}" for s in self.ctx.profile.services}
        result["chaos"] = f"http://{host}:{self.settings.control_port}/chaos"
        return result

    async def start(self) -> None:
        """Prepare the real components, then serve every service and the chaos API; fail cleanly on a taken port."""
        try:
            await self._prepare_components()
            self._control = web.AppRunner(build_chaos_app(self.chaos), access_log=None)
            await self._control.setup()
            await start_site(self._control, self.settings.host, self.settings.control_port)
            for spec in self.ctx.profile.services:
                await self._start_service(spec.name)
        except BaseException:
            await self.stop()
            raise
        self._reconciler = asyncio.create_task(self._reconcile_loop())
        self._tasks.append(asyncio.create_task(self._collector_loop()))

    async def _prepare_components(self) -> None:
        try:
            pool = await self.ctx.postgres()
            await generation.ensure_schema(pool)
            if self.settings.seed_generation and self.ctx.profile.generation_target > 0:
                status = await generation.status(pool, dt.timedelta(hours=24))
                if status.status != "completed":
                    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
                    await generation.generate(pool, self.ctx.profile.generation_target, when)
        except BackendUnavailableError as error:
            log_event(logger, logging.WARNING, "postgres_unavailable", error=str(error))
        try:
            # The platform's consumers declare their queues when they start, so the queues exist (and are
            # scraped) before any message arrives, as on the real platform.
            for name in self.ctx.profile.consumer_queues:
                channel = await declare_or_reuse(self.ctx, name)
                await channel.close()
        except BackendUnavailableError as error:
            log_event(logger, logging.WARNING, "rabbitmq_unavailable", error=str(error))
        if self.ctx.profile.kind == "pm2":
            pm2_services.start_host(self.ctx)
            for backup_set in standins.BACKUP_SETS:
                standins.write_status(self.ctx.standin_dir, backup_set, 0)
        for name in self.ctx.profile.backup_sets:
            age = backups.newest_age_seconds(self.ctx.backup_root, name)
            if age is None or age > 12 * 3600:
                backups.write_backup(self.ctx.backup_root, name)
        for service, container in self.ctx.containers.items():
            await containers.ensure_running(self.ctx.backends.docker(), container, service, self.ctx.image)

    async def _start_service(self, service: str) -> None:
        self_url = f"http://{self.settings.host}:{self.port_of(service)}"
        app = build_service_app(self.ctx, service, self_url)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        try:
            await start_site(runner, self.settings.host, self.port_of(service))
        except BaseException:
            await runner.cleanup()
            raise
        self._runners[service] = runner
        log_event(logger, logging.INFO, "service_up", service=service, port=self.port_of(service))

    async def _stop_service(self, service: str) -> None:
        runner = self._runners.pop(service, None)
        if runner is not None:
            await runner.cleanup()
            log_event(logger, logging.INFO, "service_down", service=service)

    async def _desired_listening(self, service: str) -> bool:
        if not self.ctx.state.services[service].listening:
            return False
        container = self.ctx.containers.get(service)
        if container is None:
            return True
        return await containers.is_running(self.ctx.backends.docker(), container)

    async def reconcile(self) -> None:
        """Bring each service's listener in line with its state and its container (if it has one)."""
        async with self._reconcile_lock:
            await self._reconcile_unlocked()

    async def _reconcile_unlocked(self) -> None:
        if self.ctx.state.hung_consumers:
            await consumers.revive_restarted(self.ctx)
        if self.ctx.state.market_data_frozen_start is not None and await resume_if_restarted(self.ctx):
            log_event(logger, logging.INFO, "market_data_resumed", service="data_collector")
        for spec in self.ctx.profile.services:
            want = await self._desired_listening(spec.name)
            if want and spec.name not in self._runners:
                try:
                    await self._start_service(spec.name)
                except OSError as error:
                    log_event(logger, logging.ERROR, "service_start_failed", service=spec.name, error=str(error))
            elif not want and spec.name in self._runners:
                await self._stop_service(spec.name)

    async def _reconcile_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RECONCILE_INTERVAL)
            if self._stopping.is_set():
                return
            try:
                await self.reconcile()
            except Exception as error:  # noqa: BLE001 - the loop is a process boundary; it must keep going
                log_event(logger, logging.ERROR, "reconcile_failed", error=repr(error))

    async def _collector_loop(self) -> None:
        while True:
            self.ctx.state.tick_collectors()
            self.ctx.state.tick_breakers()
            if self.ctx.profile.kind == "pm2":
                pm2_services.tick_host(self.ctx)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        """Stop every loop and listener, release held sessions and remove the sandbox's containers."""
        self._stopping.set()
        if self._reconciler is not None:
            await self._reconciler  # never cancelled: it may be half-way through stopping a listener
            self._reconciler = None
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for service in list(self._runners):
            await self._stop_service(service)
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        await self.ctx.held.close()
        await self.ctx.queries.close()
        await consumers.stop(self.ctx)
        for container in self.ctx.containers.values():
            with contextlib.suppress(BackendUnavailableError):
                await containers.remove(self.ctx.backends.docker(), container)
        await self.ctx.backends.close()
