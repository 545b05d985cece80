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

    def add(self, label_values: tuple[str, ...], value: float) -> None:
        """Record one sample; `label_values` are in the order of `label_names` (a repeat replaces it)."""
        self.samples[label_values] = value


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

    def family(self, name: str, help_text: str, kind: Kind, label_names: tuple[str, ...]) -> Family:
        """Return the family `name` for many samples with the same label names (sorted), creating it if new."""
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(name, help_text, kind, label_names)
        elif family.label_names != label_names or family.kind != kind:
            raise ValueError(f"metric {name} reported with labels {label_names}, expected {family.label_names}")
        return family

    def fail(self, reason: str) -> None:
        """Mark the probe failed while keeping the samples it did record (e.g. a service found down)."""
        self.failure = reason

    def _add(self, name: str, help_text: str, kind: Kind, labels: Mapping[str, str], value: float) -> None:
        label_names = tuple(sorted(labels))
        self.family(name, help_text, kind, label_names).add(tuple(labels[key] for key in label_names), float(value))


def merge(sinks: list[MetricSink]) -> Iterator[Metric]:
    """Yield prometheus_client families with every sink's samples merged by metric name (a later sink's sample
    replaces an earlier one with the same labels; a family whose labels or type disagree with the first is
    left out)."""
    by_name: dict[str, list[Family]] = {}
    for sink in sinks:
        for family in sink.families.values():
            by_name.setdefault(family.name, []).append(family)
    for first, *others in by_name.values():
        samples = first.samples
        if others:  # a copy: the sinks' own families stay as they were
            samples = dict(samples)
            for other in others:
                if other.label_names == first.label_names and other.kind == first.kind:
                    samples.update(other.samples)
        if not samples:  # a family a probe looked up and left empty (no queue found, say) is not exposed
            continue
        metric: GaugeMetricFamily | CounterMetricFamily
        if first.kind == "counter":
            metric = CounterMetricFamily(first.name, first.help, labels=first.label_names)
        else:
            metric = GaugeMetricFamily(first.name, first.help, labels=first.label_names)
        for label_values, value in samples.items():
            metric.add_metric(label_values, value)
        yield metric
