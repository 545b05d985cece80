"""Probes over HTTP JSON: service health (seed 000 Service Inventory) and collector health."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from common.http_auth import HttpAuth, HttpAuthError
from common.web import read_limited
from exporter.config import CollectorsConfig, ServiceHealthConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink

COLLECTOR_STATES = ("healthy", "degraded", "failed")


async def fetch_json(
    session: aiohttp.ClientSession,
    url: str,
    max_bytes: int,
    auth: HttpAuth | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """GET a URL (with the target's Authorization header, if any, and these headers, sent with this request only)
    and parse its JSON body; a body over max_bytes or not JSON, or an unreadable credentials file, raises
    ProbeError (whose message never holds the secret)."""
    try:
        headers = {**(headers or {}), **(auth.headers() if auth is not None else {})}
    except HttpAuthError as error:
        raise ProbeError("auth", str(error)) from None
    try:
        async with session.get(url, allow_redirects=False, headers=headers) as response:
            body = await read_limited(response.content, max_bytes)
            status = response.status
    except aiohttp.ClientConnectionError as error:
        raise ProbeError("connection", f"{url}: {error}") from error
    except aiohttp.ClientError as error:
        raise ProbeError("protocol", f"{url}: {error}") from error
    if len(body) > max_bytes:
        raise ProbeError("too_large", f"{url}: body larger than {max_bytes} bytes")
    try:
        return status, json.loads(body) if body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return status, _NotJson(str(error))


class _NotJson:
    """A body that did not parse as JSON (kept so a plain-200 health check can still pass)."""

    def __init__(self, error: str) -> None:
        self.error = error


def lookup(document: Any, path: str) -> Any:
    """Follow a dotted path through nested JSON objects (and list indexes); None where it leads nowhere."""
    current = document
    for part in (p for p in path.split(".") if p):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


class ServiceHealthProbe(Probe):
    """Is the service reachable and healthy, with which HTTP status, and how fast."""

    kind = "service_health"

    def __init__(self, config: ServiceHealthConfig, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.session = session
        self.max_bytes = max_bytes

    def _labels(self) -> dict[str, str]:
        return {"service": self.target}

    async def collect(self, sink: MetricSink) -> None:
        started = time.perf_counter()
        status, document = await fetch_json(self.session, str(self.config.url), self.max_bytes, self.config.auth)
        elapsed = time.perf_counter() - started
        healthy = 200 <= status < 300
        if healthy and self.config.status_path is not None:
            if isinstance(document, _NotJson):
                raise ProbeError("bad_json", f"{self.config.url}: body is not JSON: {document.error}")
            healthy = str(lookup(document, self.config.status_path)) in self.config.healthy_values
        labels = self._labels()
        sink.gauge("tradeops_service_reachable", "1 when the service answered its health endpoint.", labels, 1)
        sink.gauge(
            "tradeops_service_up",
            "1 when the service answered and reported itself healthy.",
            {**labels, "criticality": self.config.criticality},
            1 if healthy else 0,
        )
        sink.gauge("tradeops_service_http_status", "HTTP status of the last health check.", labels, status)
        sink.gauge("tradeops_service_response_seconds", "Time the health endpoint took to answer.", labels, elapsed)
        if self.config.components_path is not None and not isinstance(document, _NotJson):
            self._components(sink, lookup(document, self.config.components_path))
        if self.config.value_paths and not isinstance(document, _NotJson):
            self._values(sink, document)
        if self.config.item_values is not None and not isinstance(document, _NotJson):
            self._item_values(sink, document)

    def _values(self, sink: MetricSink, document: Any) -> None:
        for field, path in sorted(self.config.value_paths.items()):
            # A missing or non-numeric field is left out, never reported as 0 (bool is not a number here).
            if (value := finite_number(lookup(document, path))) is not None:
                sink.gauge(
                    "tradeops_service_value",
                    "A number the service reports in its health document (value_paths).",
                    {"service": self.target, "field": field},
                    value,
                )

    def _item_values(self, sink: MetricSink, document: Any) -> None:
        spec = self.config.item_values
        assert spec is not None
        found = lookup(document, spec.list_path)
        if isinstance(found, dict):  # an object keyed by the item's name
            entries = [(str(name), body) for name, body in found.items()]
        elif isinstance(found, list):
            entries = [(lookup(body, spec.label_field), body) for body in found]
        else:
            return  # nothing to read is left out, as value_paths leaves out a missing field
        labelled = [
            (str(name)[:128], body)
            for name, body in entries
            if isinstance(name, str | int) and not isinstance(name, bool)
        ]
        for count, (item, body) in enumerate(labelled):
            numbers = {field: finite_number(lookup(body, path)) for field, path in sorted(spec.value_fields.items())}
            if count >= self.config.max_items:
                sink.dropped_series += sum(n is not None for n in numbers.values())
                continue
            for field, number in numbers.items():
                if number is not None:
                    sink.gauge(
                        "tradeops_service_item_value",
                        "A number of one item (a provider, a queue) of the service's health document (item_values).",
                        {"service": self.target, "item": item, "field": field},
                        number,
                    )

    def _components(self, sink: MetricSink, components: Any) -> None:
        if not isinstance(components, dict):
            return
        for count, (name, body) in enumerate(sorted(components.items())):
            if count >= self.config.max_components:
                sink.dropped_series += len(components) - count
                break
            status = lookup(body, "status") if isinstance(body, dict) else body
            sink.gauge(
                "tradeops_service_component_up",
                "1 when a component of the service's health (Spring actuator components) is healthy.",
                {"service": self.target, "component": str(name)[:128]},
                1 if str(status) in self.config.healthy_values else 0,
            )

    def on_failure(self, sink: MetricSink) -> None:
        labels = self._labels()
        sink.gauge("tradeops_service_reachable", "1 when the service answered its health endpoint.", labels, 0)
        sink.gauge(
            "tradeops_service_up",
            "1 when the service answered and reported itself healthy.",
            {**labels, "criticality": self.config.criticality},
            0,
        )


class CollectorsProbe(Probe):
    """Each data collector's state, circuit breaker and last success (MasterTrade /health/collectors)."""

    kind = "collectors"

    def __init__(self, config: CollectorsConfig, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.session = session
        self.max_bytes = max_bytes

    async def collect(self, sink: MetricSink) -> None:
        status, document = await fetch_json(self.session, str(self.config.url), self.max_bytes, self.config.auth)
        if status != 200:
            raise ProbeError("http_status", f"{self.config.url} answered {status}")
        collectors = _collector_entries(document)
        for count, (name, body) in enumerate(collectors):
            if count >= self.config.max_series:
                sink.dropped_series += len(collectors) - count
                break
            self._record(sink, name, body)

    def _record(self, sink: MetricSink, name: str, body: dict[str, Any]) -> None:
        labels = {"source": self.target, "collector": name[:128]}
        state = str(body.get("status", "")).lower()
        for candidate in COLLECTOR_STATES:
            sink.gauge(
                "tradeops_collector_status",
                "State set of each collector: 1 for its current status (healthy, degraded, failed).",
                {**labels, "status": candidate},
                1 if state == candidate else 0,
            )
        breaker = str(body.get("circuit_breaker", body.get("circuit_breaker_state", ""))).lower()
        sink.gauge(
            "tradeops_collector_circuit_breaker_open",
            "1 when the collector's circuit breaker is open.",
            labels,
            1 if breaker in {"open", "half_open", "true"} else 0,
        )
        last = _timestamp(body.get("last_success_at"))
        if last is not None:
            sink.gauge(
                "tradeops_collector_last_success_timestamp_seconds",
                "When the collector last fetched data successfully.",
                labels,
                last,
            )


def finite_number(value: Any) -> float | None:
    """The value as a float if it is a finite number (a bool is not one); None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _collector_entries(document: Any) -> list[tuple[str, dict[str, Any]]]:
    entries = document.get("collectors") if isinstance(document, dict) else document
    if isinstance(entries, dict):
        return sorted((str(k), v) for k, v in entries.items() if isinstance(v, dict))
    if isinstance(entries, list):
        return sorted((str(e["name"]), e) for e in entries if isinstance(e, dict) and "name" in e)
    raise ProbeError("bad_json", "collectors document has neither a collectors object nor a list")


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return None
