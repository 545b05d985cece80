"""The whole product on one machine: sandbox, exporter, remediator, Prometheus, Alertmanager, node_exporter (the
host's CPU, memory and disks) and a Redis with maxmemory, configured from the shipped profiles with demo timings
(see docs/benchmarks.md and the README)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import re
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from common.web import free_ports
from sandbox import backups
from sandbox import containers as containers_module
from sandbox.app import Sandbox
from sandbox.profiles import MASTERTRADE, PROFILES, Profile
from sandbox.settings import SandboxSettings

ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = ROOT / "deploy/profiles"
RULES_DIR = ROOT / "alert_rules"
ALERTMANAGER_CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"


class MissingPrerequisiteError(RuntimeError):
    """A program the stack needs is not installed; the message says how to get it."""


def require(program: str, package: str) -> str:
    """Return a program's path or raise MissingPrerequisiteError naming the Debian package."""
    path = shutil.which(program)
    if path is None:
        raise MissingPrerequisiteError(
            f"{program} is not installed: apt-get install -y --no-install-recommends {package}"
        )
    return path


@dataclass(frozen=True)
class Timings:
    """How fast the loop turns. The demo's are short; the shipped rules' expressions are unchanged."""

    scrape_seconds: float = 1.0
    evaluation_seconds: float = 1.0
    alert_for_seconds: float = 3.0
    group_wait_seconds: float = 1.0
    group_interval_seconds: float = 2.0
    repeat_interval_seconds: float = 10.0
    retry_after_minutes: float = 0.25
    cooldown_minutes: float = 0.05
    escalate_after_minutes: float = 0.75
    # A playbook step's verification is polled this often and given up after this long, at most. The window is
    # compressed less than the rest: what it waits for is physical (a container restarted, its consumer back, a
    # backlog drained, a scrape and an evaluation), and 10 s lost that race on a loaded CI machine. A retry due
    # while a step still verifies waits for the verification to end.
    verify_every_seconds: float = 2.0
    verify_within_seconds: float = 25.0
    # A step waiting for a human's approval expires after this long at most: shorter than a verification plus
    # the wait, so the expiry comes before the still-firing escalation (escalate_after_minutes) does.
    approval_within_minutes: float = 0.15


@dataclass(frozen=True)
class StackPorts:
    """Where everything listens."""

    prometheus: int
    alertmanager: int
    exporter: int
    remediator: int
    redis: int
    chaos: int
    services: dict[str, int]
    node_exporter: int = 9100

    @classmethod
    def standard(cls, profile: Profile = MASTERTRADE) -> StackPorts:
        """The usual ports (the demo): 9090, 9093, 10101, 10102, 9100, the runbook's service ports."""
        return cls(9090, 9093, 10101, 10102, 16379, 8099, {s.name: s.port for s in profile.services}, 9100)

    @classmethod
    def free(cls, profile: Profile = MASTERTRADE) -> StackPorts:
        """Free loopback ports (tests)."""
        own = free_ports(7 + len(profile.services))
        services = {s.name: own[7 + index] for index, s in enumerate(profile.services)}
        return cls(own[0], own[1], own[2], own[3], own[4], own[5], services, own[6])


@dataclass
class StackOptions:
    """What differs between one stack and another."""

    run_dir: Path
    ports: StackPorts
    profile: str = "mastertrade"
    postgres_admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database: str = "mastertrade"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmq_api: str = "http://127.0.0.1:15672"
    docker_host: str | None = None
    container_prefix: str = "mastertrade_"
    timings: Timings = field(default_factory=Timings)
    remediator_overrides: dict[str, Any] = field(default_factory=dict)
    # The connection-exhaustion thresholds are lowered so the demo need not eat the shared server's connections.
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"postgres_connections_ratio_exhausted": 0.4, "ai_trading_v11_connections_ratio": 0.4}
    )


def _with_port(url: str, port: int) -> str:
    return re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", url, count=1)


@dataclass
class Stack:
    """A running stack; `urls` says where each part is."""

    options: StackOptions
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sandbox: Sandbox | None = None
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        """DSN of the simulated platform's database."""
        base, _, _ = self.options.postgres_admin_dsn.rpartition("/")
        return f"{base}/{self.options.database}"

    @property
    def backup_root(self) -> Path:
        """Where the simulated backups are."""
        return self.options.run_dir / "backups"

    def container(self, service: str) -> str:
        """The container standing in for a service."""
        return f"{self.options.container_prefix}{service}"

    def urls(self) -> dict[str, str]:
        """Where each part of the stack answers."""
        p = self.options.ports
        return {
            "prometheus": f"http://127.0.0.1:{p.prometheus}",
            "alertmanager": f"http://127.0.0.1:{p.alertmanager}",
            "exporter": f"http://127.0.0.1:{p.exporter}/metrics",
            "remediator": f"http://127.0.0.1:{p.remediator}",
            "chaos": f"http://127.0.0.1:{p.chaos}/chaos",
            "node_exporter": f"http://127.0.0.1:{p.node_exporter}/metrics",
        }

    # -- configuration -------------------------------------------------------------------------------------
    @property
    def spec(self) -> Profile:
        """The simulated system."""
        return PROFILES[self.options.profile]

    @property
    def profile_dir(self) -> Path:
        """Where the system's shipped profile is."""
        return PROFILES_DIR / self.options.profile

    def _retarget(self, text: str) -> str:
        """Point every address of the profile's services at this stack's ports."""
        for spec in self.spec.services:
            port = self.options.ports.services[spec.name]
            text = re.sub(rf"127\.0\.0\.1:{spec.port}\b", f"127.0.0.1:{port}", text)
        return text

    def exporter_config(self) -> dict[str, Any]:
        """The shipped exporter profile, pointed at this stack."""
        config: dict[str, Any] = yaml.safe_load(self._retarget((self.profile_dir / "exporter.yml").read_text()))
        probes = config["probes"]
        for probe in probes.get("strategy_generation", []):
            probe["dsn"] = self.dsn
        for probe in probes.get("backups", []):
            glob = probe["path_glob"]
            if glob.startswith("/var/lib/tradeops-sandbox/backups"):  # the sets the sandbox writes
                probe["path_glob"] = glob.replace("/var/lib/tradeops-sandbox/backups", str(self.backup_root))
            elif (stand_in := backups.sandbox_glob(self.backup_root, glob)) is not None:  # a site set it writes
                probe["path_glob"] = stand_in
            else:  # a site path: an empty directory of the stack's own
                probe["path_glob"] = str(self.backup_root / "site" / glob.lstrip("/"))
                Path(probe["path_glob"]).parent.mkdir(parents=True, exist_ok=True)
        for probe in probes.get("rabbitmq", []):
            probe["management_url"] = self.options.rabbitmq_api
            probe["include"] = [re.escape(q) for q in self.spec.consumer_queues]
        for probe in probes.get("redis", []):
            probe["url"] = f"redis://127.0.0.1:{self.options.ports.redis}/0"
        for probe in probes.get("postgres", []):
            probe["dsn"] = self.options.postgres_admin_dsn
            probe["databases"] = [self.options.database]
        for probe in probes.get("command", []):
            probe["argv"] = self._standin_argv(probe["argv"])
        for probe in probes.get("containers", []):
            # The memory probe (ai-trading's Memory Leaks) reads the stack's own containers on its engine; the
            # restart probes keep their shipped names, so a stack's restarts raise no ContainerRestarted.
            if probe.get("memory") and self.options.docker_host is not None:
                probe["docker_host"] = self.options.docker_host
                probe["include"] = [re.escape(self.options.container_prefix) + ".*"]
        return config

    def _standin_argv(self, argv: list[str]) -> list[str]:
        """The sandbox's stand-in for a host command of seed 004 (`pm2 jlist`, backup-status SET)."""
        base = [sys.executable, "-m", "sandbox.standins", "--state-dir", str(self.backup_root / "host")]
        if argv[:2] == ["pm2", "jlist"]:
            return [*base, "jlist"]
        if argv[0].endswith("/backup-status"):
            return [*base, "backup-status", *argv[1:]]
        return argv

    def _standin_script(self, path: str) -> str:
        """Write an executable stand-in for one of seed 004's backup scripts; return its path."""
        name = Path(path).name  # backup-postgres.sh
        backup_set = name.removeprefix("backup-").removesuffix(".sh")
        script = self.options.run_dir / "standins" / name
        script.parent.mkdir(parents=True, exist_ok=True)
        state = self.backup_root / "host"
        script.write_text(
            f"#!/bin/sh\nexec {sys.executable} -m sandbox.standins --state-dir {state} backup-run {backup_set}\n"
        )
        script.chmod(0o755)
        return str(script)

    def remediator_config(self) -> dict[str, Any]:
        """The shipped remediator profile, pointed at this stack, with the stack's timings."""
        config: dict[str, Any] = yaml.safe_load(self._retarget((self.profile_dir / "remediator.yml").read_text()))
        t = self.options.timings
        ports = self.options.ports
        config["audit_path"] = str(self.options.run_dir / "remediator" / "audit.sqlite3")
        config["backends"] = {
            "docker_host": self.options.docker_host,
            "postgres_dsn": self.options.postgres_admin_dsn,
            "redis_url": f"redis://127.0.0.1:{ports.redis}",
            "amqp_url": self.options.amqp_url,
            "rabbitmq_api_url": self._management_url(),  # the queue diagnose steps
            "alertmanager_url": self.urls()["alertmanager"],
        }
        config["maintenance_windows"] = []
        config["prometheus"] = {**config.get("prometheus", {}), "url": self.urls()["prometheus"]}  # when/verify
        config["escalation"]["alertmanager"]["url"] = self.urls()["alertmanager"]
        config["escalation"]["after_minutes"] = dict.fromkeys(("P0", "P1", "P2", "P3"), t.escalate_after_minutes)
        config["escalation"]["check_interval_seconds"] = 1
        config["limits"]["actions_per_hour"] = 100
        shipped = self._shipped_containers(config["rules"])  # before their maps are rewritten
        for rule in config["rules"]:
            rule["retry_after_minutes"] = t.retry_after_minutes
            rule["cooldown_minutes"] = t.cooldown_minutes
            rule["rate"] = {"per_minute": 60, "burst": 10}
            for step in rule.get("steps") or [rule]:  # a playbook's steps, or the rule's one action
                params = step.get("params", {})
                verify = step.get("verify")
                if verify is not None:
                    verify["every_seconds"] = min(verify.get("every_seconds", 15), t.verify_every_seconds)
                    verify["within_seconds"] = min(verify.get("within_seconds", 300), t.verify_within_seconds)
                approval = step.get("approval")
                if approval is not None:
                    approval["within_minutes"] = min(approval.get("within_minutes", 30), t.approval_within_minutes)
                if step.get("action") in {"postgres_terminate", "postgres_cancel_queries"}:
                    params["database"] = self.options.database
                if step.get("action") == "postgres_terminate":
                    params["idle_minutes"] = 0
                if step.get("action") == "postgres_cancel_queries":
                    params["older_than_seconds"] = 1
                if step.get("action") == "command" and params.get("argv", [])[:2] == ["pm2", "restart"]:
                    process = params["argv"][params["argv"].index("--only") + 1]
                    params["argv"] = [*self._standin_argv(["pm2", "jlist"])[:-1], "pm2-restart", process]
                if step.get("action") == "command" and "--backup-now" in params.get("argv", []):
                    params["argv"] = [
                        sys.executable,
                        "-m",
                        "sandbox.main",
                        "--backup-root",
                        str(self.backup_root),
                        "--backup-now",
                        "{set}",
                    ]
            self._retarget_containers(rule, shipped)
            script = rule.get("label_params", {}).get("script")
            if script is not None:
                script["map"] = {key: self._standin_script(value) for key, value in script["map"].items()}
        config.update(copy.deepcopy(self.options.remediator_overrides))
        return config

    def _management_url(self) -> str:
        """RabbitMQ's management API with the AMQP URL's credentials (guest:guest on the test broker)."""
        credentials = urlsplit(self.options.amqp_url).netloc.rpartition("@")[0]
        scheme, _, rest = self.options.rabbitmq_api.partition("://")
        return f"{scheme}://{credentials}@{rest}" if credentials else self.options.rabbitmq_api

    def _retarget_containers(self, rule: dict[str, Any], shipped: dict[str, str]) -> None:
        """Point a rule's container parameter at the stack's containers: a map keyed by service (or by queue: its
        consumer's), or, on a stack with an engine, an allowlist of the alert's container label
        (restart-leaking-service), each shipped name turned into the stack's name for its service."""
        container = rule.get("label_params", {}).get("container")
        if container is None:
            return
        if "map" in container:
            container["map"] = {key: self.container(self._service_of(key)) for key in container["map"]}
        elif container.get("label") == "container" and self.options.docker_host is not None:
            allowed = container.get("allowed", [])  # a name that stands for no service of the stack stays
            container["allowed"] = [self.container(shipped[name]) if name in shipped else name for name in allowed]

    def _shipped_containers(self, rules: list[dict[str, Any]]) -> dict[str, str]:
        """The service each shipped container name stands for, from the profile's service-keyed container maps
        (restart-service: data_collector -> ai-trading-data-collector)."""
        shipped: dict[str, str] = {}
        for rule in rules:
            container = rule.get("label_params", {}).get("container")
            if container is not None and "map" in container:
                for key, name in container["map"].items():
                    shipped.setdefault(name, self._service_of(key))
        return shipped

    def _service_of(self, key: str) -> str:
        """The service a container map's key names: itself, the service that consumes the queue it names, or the
        service whose status endpoint is that target (seed 002's data_collector_status: the data collector)."""
        services = {spec.name for spec in self.spec.services}
        if key not in services and key.removesuffix("_status") in services:
            return key.removesuffix("_status")
        return dict(self.spec.queue_consumers).get(key, key)

    def rules_dir(self) -> Path:
        """The shipped rule files with `for:` shortened and site thresholds overridden for the stack."""
        target = self.options.run_dir / "rules"
        target.mkdir(parents=True, exist_ok=True)
        manifest = yaml.safe_load((self.profile_dir / "profile.yml").read_text())
        for path in (RULES_DIR / name for name in manifest["rule_files"]):
            document = yaml.safe_load(path.read_text())
            for group in document["groups"]:
                group.pop("interval", None)
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = f"{self.options.timings.alert_for_seconds:g}s"
                    name = rule.get("record", "")
                    for key, value in self.options.thresholds.items():
                        if name == f"tradeops:{key}:threshold":
                            rule["expr"] = f"vector({value})"
            (target / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
        return target

    def prometheus_config(self) -> dict[str, Any]:
        """Scrape the exporter, the remediator and the simulated services; alert to this Alertmanager."""
        t = self.options.timings
        services = [f"127.0.0.1:{port}" for port in self.options.ports.services.values()]
        return {
            "global": {
                "scrape_interval": f"{t.scrape_seconds:g}s",
                "evaluation_interval": f"{t.evaluation_seconds:g}s",
                "scrape_timeout": f"{t.scrape_seconds:g}s",
            },
            "rule_files": [str(self.rules_dir() / "*.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.options.ports.alertmanager}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": "tradeops-exporter",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.options.ports.exporter}"]}],
                },
                {
                    "job_name": "tradeops-remediator",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.options.ports.remediator}"]}],
                },
                {
                    "job_name": self.spec.name,
                    "metrics_path": self.spec.metrics_path,
                    "static_configs": [{"targets": services}],
                },
                {  # the host's CPU, memory and disks, for the resource alerts of every profile
                    "job_name": "node",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.options.ports.node_exporter}"]}],
                },
            ],
        }

    def alertmanager_config(self) -> dict[str, Any]:
        """The shipped routing (deploy/alertmanager/alertmanager.yml) pointed at this stack's remediator with its
        token, with the stack's timings on every route: own alerts and escalations to 'pager', the rest to the
        remediator, the Watchdog to 'deadmansswitch'."""
        t = self.options.timings
        config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        timings = {
            "group_wait": f"{t.group_wait_seconds:g}s",
            "group_interval": f"{t.group_interval_seconds:g}s",
            "repeat_interval": f"{t.repeat_interval_seconds:g}s",
        }
        routes = [config["route"]]
        while routes:
            route = routes.pop()
            for key in timings:
                route.pop(key, None)
            routes += route.get("routes", [])
        config["route"].update(timings)
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                if webhook["url"].endswith(":10102/webhook"):  # the remediator's
                    webhook["url"] = f"{self.urls()['remediator']}/webhook"
                    webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.token}}
        return config

    # -- processes ------------------------------------------------------------------------------------------
    async def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.options.run_dir / f"{name}.log").open("wb")
        self.processes[name] = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, env=env, start_new_session=True
        )
        log.close()

    async def _spawn_service(self, name: str, port: int) -> None:
        """Run one of the product's own services (exporter, remediator) on its generated config."""
        config = self.options.run_dir / f"{name}.yml"
        argv = [sys.executable, "-m", f"{name}.main", "--config.file", str(config)]
        argv += ["--web.listen-address", f"127.0.0.1:{port}"]
        if name == "remediator":
            argv.append("--web.enable-lifecycle")  # the maintenance scenarios reload it (with the token)
        await self._spawn(name, argv, {**os.environ, "TRADEOPS_WEBHOOK_TOKEN": self.token})

    async def start(self) -> None:
        """Start every part and wait until each answers; on failure stop what started and raise."""
        prometheus = require("prometheus", "prometheus")
        alertmanager = require("prometheus-alertmanager", "prometheus-alertmanager")
        redis_server = require("redis-server", "redis-server")
        node_exporter = require("prometheus-node-exporter", "prometheus-node-exporter")
        run = self.options.run_dir
        run.mkdir(parents=True, exist_ok=True)
        ports = self.options.ports
        try:
            await self._spawn(
                "redis",
                [
                    redis_server,
                    "--port",
                    str(ports.redis),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--maxmemory",
                    "64mb",
                    "--maxmemory-policy",
                    "noeviction",
                ],
            )
            linked = self.spec.container_service
            containers = {linked: self.container(linked)} if self.options.docker_host and linked else {}
            self.sandbox = Sandbox(
                SandboxSettings(
                    ports=dict(ports.services),
                    control_port=ports.chaos,
                    postgres_dsn=self.dsn,
                    redis_url=f"redis://127.0.0.1:{ports.redis}/0",
                    amqp_url=self.options.amqp_url,
                    docker_host=self.options.docker_host,
                    containers=containers,
                    backup_root=self.backup_root,
                    profile=self.spec.name,
                    # two beyond the remediator's allowlist, for the not-allowed scenario
                    collectors=10 if self.spec.collectors else None,
                )
            )
            await self.sandbox.start()
            if self.options.docker_host is not None and self.spec is MASTERTRADE:
                # A container the sandbox does not link to its service: restarting it cannot fix the service.
                client = self.sandbox.ctx.backends.docker()
                image = self.sandbox.settings.image
                await containers_module.ensure_running(client, self.container("risk_manager"), "risk_manager", image)
            for name, document in (
                ("exporter", self.exporter_config()),
                ("remediator", self.remediator_config()),
                ("prometheus", self.prometheus_config()),
                ("alertmanager", self.alertmanager_config()),
            ):
                (run / f"{name}.yml").write_text(yaml.safe_dump(document, sort_keys=False))
            await self._spawn(
                "node_exporter",
                [  # only what the rules read: CPU, memory, filesystems
                    node_exporter,
                    f"--web.listen-address=127.0.0.1:{ports.node_exporter}",
                    "--collector.disable-defaults",
                    "--collector.cpu",
                    "--collector.meminfo",
                    "--collector.filesystem",
                ],
            )
            await self._spawn_service("exporter", ports.exporter)
            await self._spawn_service("remediator", ports.remediator)
            await self._spawn(
                "alertmanager",
                [
                    alertmanager,
                    f"--config.file={run / 'alertmanager.yml'}",
                    f"--storage.path={run / 'alertmanager-data'}",
                    "--cluster.listen-address=",
                    f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
                ],
            )
            await self._spawn(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={run / 'prometheus.yml'}",
                    f"--storage.tsdb.path={run / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{ports.prometheus}",
                    "--web.enable-lifecycle",
                ],
            )
            urls = self.urls()
            for url in (
                f"{urls['prometheus']}/-/ready",
                f"{urls['alertmanager']}/-/ready",
                urls["exporter"],
                urls["node_exporter"],
                f"{urls['remediator']}/-/ready",
            ):
                await self.wait_ready(url)
        except BaseException:
            await self.stop()
            raise

    async def wait_ready(self, url: str, seconds: float = 60) -> None:
        """Wait (bounded) until a URL answers 200; raise naming the process log on failure."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            for _ in range(int(seconds * 5)):
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                for name, process in self.processes.items():
                    if process.returncode is not None:
                        log = (self.options.run_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{url} did not become ready within {seconds}s (logs in {self.options.run_dir})")

    async def restart_remediator(self) -> None:
        """Kill the remediator and start it again on the same state (its SQLite store survives)."""
        process = self.processes.pop("remediator")
        process.kill()
        await process.wait()
        await self._spawn_service("remediator", self.options.ports.remediator)
        await self.wait_ready(f"{self.urls()['remediator']}/-/ready")

    async def stop(self) -> None:
        """Stop every process and the sandbox; leave nothing running."""
        for process in self.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self.processes.clear()
        if self.sandbox is not None:
            with contextlib.suppress(Exception):
                await self.sandbox.chaos.clear_all()
            if self.options.docker_host is not None and self.spec is MASTERTRADE:
                with contextlib.suppress(Exception):
                    await containers_module.remove(self.sandbox.ctx.backends.docker(), self.container("risk_manager"))
            await self.sandbox.stop()
            self.sandbox = None


@contextlib.asynccontextmanager
async def running_stack(options: StackOptions) -> AsyncIterator[Stack]:
    """Start a stack and always stop it."""
    stack = Stack(options)
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()
