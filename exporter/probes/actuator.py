"""Meters of a Spring Boot actuator (seed 003, Incident 2 step 3: `curl :8080/actuator/metrics/jvm.memory.used`):
each configured meter, narrowed by its tags, one statistic of it, as tradeops_actuator_metric."""

from __future__ import annotations

import asyncio
import math
from urllib.parse import quote, urlencode

import aiohttp

from exporter.config import ActuatorConfig, ActuatorMetricConfig
from exporter.probes.base import Probe, ProbeError
from exporter.probes.http import fetch_json
from exporter.sink import MetricSink

HELP = "A statistic of a Micrometer meter read from the actuator (/actuator/metrics/{metric}?tag=...)."


class ActuatorProbe(Probe):
    """Reads every meter at once; a meter that fails is left out and fails the probe, the others are reported."""

    kind = "actuator"

    def __init__(self, config: ActuatorConfig, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.session = session
        self.max_bytes = max_bytes
        self.base = str(config.base_url).rstrip("/")

    async def collect(self, sink: MetricSink) -> None:
        results = await asyncio.gather(*(self._read(meter) for meter in self.config.metrics), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if len(failures) == len(results):
            raise failures[0]
        for meter, result in zip(self.config.metrics, results, strict=True):
            if isinstance(result, float):
                tags = ",".join(f"{name}:{value}" for name, value in sorted(meter.tags.items()))
                labels = {"service": self.target, "metric": meter.metric, "tags": tags}
                sink.gauge("tradeops_actuator_metric", HELP, labels, result)
        if failures:
            first = failures[0]
            sink.fail(first.reason if isinstance(first, ProbeError) else "error")

    async def _read(self, meter: ActuatorMetricConfig) -> float:
        query = urlencode([("tag", f"{name}:{value}") for name, value in sorted(meter.tags.items())])
        url = f"{self.base}/metrics/{quote(meter.metric, safe='')}" + (f"?{query}" if query else "")
        status, document = await fetch_json(self.session, url, self.max_bytes, self.config.auth)
        if status != 200:
            raise ProbeError("http_status", f"{url} answered {status}")
        measurements = document.get("measurements") if isinstance(document, dict) else None
        if not isinstance(measurements, list):
            raise ProbeError("bad_json", f"{url}: no measurements list")
        for measurement in measurements:
            if isinstance(measurement, dict) and measurement.get("statistic") == meter.statistic:
                value = measurement.get("value")
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    return float(value)
                raise ProbeError("bad_result", f"{url}: {meter.statistic} is not a finite number")
        raise ProbeError("bad_result", f"{url}: no {meter.statistic} measurement")
