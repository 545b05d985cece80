"""Collecting one scrape's samples into metric families, merged by name across probes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Kind = Literal["gauge", "counter"]


@dataclass
class Family:
    """One metric family being filled during a scrape."""

    name: str
    help: str
    kind: Kind
    label_names: tuple[str, ...]
    samples: dict[tuple[str, ...], float] = field(default_factory=dict)


class SeriesLimitError(Exception):
    """A probe produced more series than its configured maximum."""


@dataclass
class MetricSink:
    """What one probe reports during one scrape; merged into the scrape's output afterwards."""

    families: dict[str, Family] = field(default_factory=dict)
    failure: str | None = None
    dropped_series: int = 0

    def gauge(self, name: str, help_text: str, labels: Mapping[str, str], value: float) -> None:
        """Record one gauge sample."""
        self._add(name, help_text, "gauge", labels, value)

    def counter(self, name: str, help_text: str, labels: Mapping[str, str], value: float) -> None:
        """Record one counter sample; `name` is given without the `_total` suffix."""
        self._add(name, help_text, "counter", labels, value)

    def fail(self, reason: str) -> None:
        """Mark the probe failed while keeping the samples it did record (e.g. a service found down)."""
        self.failure = reason

    def _add(self, name: str, help_text: str, kind: Kind, labels: Mapping[str, str], value: float) -> None:
        label_names = tuple(sorted(labels))
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(name, help_text, kind, label_names)
        elif family.label_names != label_names or family.kind != kind:
            raise ValueError(f"metric {name} reported with labels {label_names}, expected {family.label_names}")
        family.samples[tuple(labels[key] for key in label_names)] = float(value)


def merge(sinks: list[MetricSink]) -> Iterator[Metric]:
    """Yield prometheus_client families with every sink's samples merged by metric name."""
    merged: dict[str, Family] = {}
    for sink in sinks:
        for family in sink.families.values():
            target = merged.get(family.name)
            if target is None:
                merged[family.name] = Family(
                    family.name, family.help, family.kind, family.label_names, dict(family.samples)
                )
            elif target.label_names == family.label_names and target.kind == family.kind:
                target.samples.update(family.samples)
    for family in merged.values():
        metric: GaugeMetricFamily | CounterMetricFamily
        if family.kind == "counter":
            metric = CounterMetricFamily(family.name, family.help, labels=family.label_names)
        else:
            metric = GaugeMetricFamily(family.name, family.help, labels=family.label_names)
        for label_values, value in family.samples.items():
            metric.add_metric(list(label_values), value)
        yield metric
