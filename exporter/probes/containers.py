"""Containers of a Docker engine (seed 000, Morning Checklist 1: "any restart events in last 24h"; Common Issues 1:
a container that "restarts continuously"): restart count, running, last start, OOM kill, from the Engine API; and,
when configured, each running container's memory usage and limit (seed 002, Memory Leaks)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any
from urllib.parse import quote

import aiohttp

from exporter.config import ContainersConfig
from exporter.probes.base import NameFilter, Probe, ProbeError
from exporter.probes.http import fetch_json, finite_number
from exporter.sink import Kind, MetricSink

FRACTION = re.compile(r"\.([0-9]+)")
INSPECT_CONCURRENCY = 8  # Engine API calls in flight at once, inspections and stats together
STATS_MAX_BYTES = 1024 * 1024  # a stats answer is a few KiB; one larger is not the engine's
FAMILIES: tuple[tuple[str, str, Kind], ...] = (
    ("tradeops_container_restarts", "Restarts the engine made under the restart policy (RestartCount).", "counter"),
    ("tradeops_container_running", "1 while the container runs.", "gauge"),
    ("tradeops_container_oom_killed", "1 when the container's last exit was an OOM kill.", "gauge"),
    ("tradeops_container_started_at_timestamp_seconds", "When the container last started.", "gauge"),
)
MEMORY_FAMILIES: tuple[tuple[str, str], ...] = (
    (
        "tradeops_container_memory_usage_bytes",
        "Memory the container uses, less its inactive file cache (docker stats).",
    ),
    ("tradeops_container_memory_limit_bytes", "The container's own memory limit; absent when it has none."),
)
CONTAINER_LABELS = ("container", "engine")  # sorted, as MetricSink orders label names


class ContainersProbe(Probe):
    """Lists the engine's containers (all, stopped too), keeps the filtered first `max_containers` by name, and
    inspects each for its RestartCount and State. Talks to the Engine API itself (aiohttp over the engine's Unix
    socket or TCP port) so that a hanging engine is cut off at the deadline and no answer is read past
    max_response_bytes; the docker SDK's blocking calls, in a thread, could be neither."""

    kind = "containers"

    def __init__(self, config: ContainersConfig, max_bytes: int) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.max_bytes = max_bytes
        self.filter = NameFilter(config.include, config.exclude)
        host = config.docker_host
        if host.startswith("unix://"):
            self.socket_path: str | None = host.removeprefix("unix://")
            self.base = "http://docker"
        else:
            self.socket_path = None
            self.base = "http://" + host.split("://", 1)[1]
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The probe's own session (a Unix-socket connector is per engine), opened on first use."""
        if self._session is None:
            connector: aiohttp.BaseConnector = (
                aiohttp.UnixConnector(path=self.socket_path) if self.socket_path else aiohttp.TCPConnector(limit=8)
            )
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "tradeops-exporter"})
        return self._session

    async def collect(self, sink: MetricSink) -> None:
        status, listing = await fetch_json(self.session(), f"{self.base}/containers/json?all=1", self.max_bytes)
        if status != 200:
            raise ProbeError("http_status", f"engine answered {status} to the container listing")
        if not isinstance(listing, list):
            raise ProbeError("bad_json", "engine answered something other than a JSON list of containers")
        states = {
            entry["Id"]: entry.get("State")
            for entry in listing
            if isinstance(entry, dict) and isinstance(entry.get("Id"), str)
        }
        containers = sorted(
            (name, entry["Id"])
            for entry in listing
            if isinstance(entry, dict) and isinstance(entry.get("Id"), str)
            for name in [_name(entry)]
            if name is not None and self.filter.allows(name)
        )
        if len(containers) > self.config.max_containers:  # the same ones in every scrape: the first by name
            sink.dropped_series += len(containers) - self.config.max_containers
            del containers[self.config.max_containers :]
        # Memory of the running ones only (a stopped container has no usage), under the same bound of calls.
        measured = [i for _, i in containers if self.config.memory and states.get(i) == "running"]
        slots = asyncio.Semaphore(INSPECT_CONCURRENCY)
        inspected, stats = await asyncio.gather(
            asyncio.gather(*(self._inspect(container_id, slots) for _, container_id in containers)),
            asyncio.gather(*(self._stats(container_id, slots) for container_id in measured)),
        )
        families = [sink.family(name, help_text, kind, CONTAINER_LABELS) for name, help_text, kind in FAMILIES]
        restarts, running, oom, started = families
        memory_stats = dict(zip(measured, stats, strict=True))
        for (name, container_id), attrs in zip(containers, inspected, strict=True):
            if attrs is None:  # removed between the listing and its inspection
                continue
            labels = (name[:128], self.target)
            state = attrs.get("State")
            count = attrs.get("RestartCount")
            if not isinstance(state, dict) or not isinstance(count, int) or isinstance(count, bool):
                raise ProbeError("bad_json", f"container {name!r}: no State or RestartCount in its inspection")
            restarts.add(labels, float(count))
            running.add(labels, 1.0 if state.get("Running") is True else 0.0)
            oom.add(labels, 1.0 if state.get("OOMKilled") is True else 0.0)
            when = _started_at(state.get("StartedAt"))
            if when is not None:
                started.add(labels, when)
            if self.config.memory:
                self._memory(sink, labels, memory_stats.get(container_id), attrs)

    def _memory(self, sink: MetricSink, labels: tuple[str, str], stats: Any, attrs: dict[str, Any]) -> None:
        usage_family, limit_family = (sink.family(n, h, "gauge", CONTAINER_LABELS) for n, h in MEMORY_FAMILIES)
        host_config = attrs.get("HostConfig")
        usage, limit = memory_figures(stats, host_config.get("Memory") if isinstance(host_config, dict) else None)
        if usage is not None:
            usage_family.add(labels, usage)
        if limit is not None:
            limit_family.add(labels, limit)

    async def _stats(self, container_id: str, slots: asyncio.Semaphore) -> Any:
        """One sample of the container's stats (one-shot: API 1.41 and later; an older engine ignores the flag
        and waits a second for its second sample, within the probe's timeout); None when it is gone or stopped."""
        async with slots:
            url = f"{self.base}/containers/{quote(container_id, safe='')}/stats?stream=false&one-shot=true"
            status, stats = await fetch_json(self.session(), url, min(self.max_bytes, STATS_MAX_BYTES))
        if status in (404, 409):
            return None
        if status != 200:
            raise ProbeError("http_status", f"engine answered {status} to a container's stats")
        if not isinstance(stats, dict):
            raise ProbeError("bad_json", "engine answered something other than a JSON object for a container's stats")
        return stats

    async def _inspect(self, container_id: str, slots: asyncio.Semaphore) -> dict[str, Any] | None:
        async with slots:
            url = f"{self.base}/containers/{quote(container_id, safe='')}/json"
            status, attrs = await fetch_json(self.session(), url, self.max_bytes)
        if status == 404:
            return None
        if status != 200:
            raise ProbeError("http_status", f"engine answered {status} to a container inspection")
        if not isinstance(attrs, dict):
            raise ProbeError("bad_json", "engine answered something other than a JSON object for a container")
        return attrs

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def memory_figures(stats: Any, configured_limit: Any) -> tuple[float | None, float | None]:
    """The usage and limit of a stats answer, in bytes, as `docker stats` shows them: the usage less the inactive
    file cache (cgroup v1 `total_inactive_file`, v2 `inactive_file`), and the limit only when the container has
    one of its own (`configured_limit`, the inspection's HostConfig.Memory, > 0: without one the engine reports
    the host's memory). A figure missing, not a finite non-negative number, or a limit of 0 is None."""
    memory = stats.get("memory_stats") if isinstance(stats, dict) else None
    if not isinstance(memory, dict):
        return None, None
    usage = _bytes(memory.get("usage"))
    limit = _bytes(memory.get("limit"))
    if limit == 0 or _bytes(configured_limit) in (None, 0):
        limit = None
    breakdown = memory.get("stats")
    if usage is not None and isinstance(breakdown, dict):
        for key in ("total_inactive_file", "inactive_file"):
            inactive = _bytes(breakdown.get(key))
            if inactive is not None:
                if inactive < usage:
                    usage -= inactive
                break
    return usage, limit


def _bytes(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is not None and number >= 0 else None


def _name(entry: dict[str, Any]) -> str | None:
    names = entry.get("Names")
    if isinstance(names, list) and names and isinstance(names[0], str):
        return names[0].lstrip("/")
    return None


def _started_at(value: Any) -> float | None:
    """Docker's StartedAt (RFC 3339 with nanoseconds); its zero time (never started) is None."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    text = value.replace("Z", "+00:00")
    fraction = FRACTION.search(text)
    if fraction is not None:  # Python parses at most microseconds; Docker writes nanoseconds
        text = text[: fraction.start()] + "." + fraction.group(1)[:6] + text[fraction.end() :]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
