"""Merging samples from probes, and the JSON path lookups probes use."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter.probes.files import gzip_intact, rdb_intact
from exporter.probes.http import lookup
from exporter.sink import MetricSink, merge


def test_families_from_several_probes_merge_into_one_family_per_name() -> None:
    first, second = MetricSink(), MetricSink()
    first.gauge("tradeops_x", "help", {"a": "1"}, 1)
    second.gauge("tradeops_x", "help", {"a": "2"}, 2)
    families = list(merge([first, second]))
    assert len(families) == 1
    assert sorted(s.value for s in families[0].samples) == [1.0, 2.0]


def test_a_probe_cannot_change_a_metrics_label_names() -> None:
    sink = MetricSink()
    sink.gauge("tradeops_x", "help", {"a": "1"}, 1)
    with pytest.raises(ValueError, match="expected"):
        sink.gauge("tradeops_x", "help", {"b": "1"}, 1)


def test_a_later_probes_sample_replaces_an_earlier_one_with_the_same_labels_and_the_sinks_stay_as_they_were() -> None:
    first, second = MetricSink(), MetricSink()
    first.gauge("tradeops_x", "help", {"a": "1"}, 1)
    second.gauge("tradeops_x", "help", {"a": "1"}, 5)
    (family,) = merge([first, second])
    assert [(s.labels, s.value) for s in family.samples] == [({"a": "1"}, 5.0)]
    assert first.families["tradeops_x"].samples == {("1",): 1.0}


def test_a_family_with_other_labels_than_the_first_of_its_name_is_left_out_of_the_merge() -> None:
    first, second = MetricSink(), MetricSink()
    first.gauge("tradeops_x", "help", {"a": "1"}, 1)
    second.gauge("tradeops_x", "help", {"b": "2"}, 2)
    (family,) = merge([first, second])
    assert [s.labels for s in family.samples] == [{"a": "1"}]


def test_samples_added_to_a_family_by_label_values_come_out_labelled_by_name() -> None:
    sink = MetricSink()
    family = sink.family("tradeops_q", "help", "gauge", ("broker", "queue"))
    family.add(("main", "orders"), 3.0)
    assert sink.family("tradeops_q", "help", "gauge", ("broker", "queue")) is family
    sink.gauge("tradeops_q", "help", {"queue": "signals", "broker": "main"}, 4)
    (merged,) = merge([sink])
    assert [(s.labels, s.value) for s in merged.samples] == [
        ({"broker": "main", "queue": "orders"}, 3.0),
        ({"broker": "main", "queue": "signals"}, 4.0),
    ]
    with pytest.raises(ValueError, match="expected"):
        sink.family("tradeops_q", "help", "counter", ("broker", "queue"))


def test_a_family_looked_up_and_left_empty_is_not_exposed() -> None:
    sink = MetricSink()
    sink.family("tradeops_q", "help", "gauge", ("queue",))
    sink.gauge("tradeops_x", "help", {}, 1)
    assert [family.name for family in merge([sink])] == ["tradeops_x"]


def test_counters_are_exposed_with_the_total_suffix() -> None:
    sink = MetricSink()
    sink.counter("tradeops_things", "help", {}, 3)
    (family,) = merge([sink])
    assert family.samples[0].name == "tradeops_things_total"


def test_families_sharing_label_sets_render_each_sample_with_its_own_name_value_and_escaped_labels() -> None:
    sink = MetricSink()
    for name, value in (("tradeops_a", 1.0), ("tradeops_b", 2.0)):
        family = sink.family(name, "help", "gauge", ("queue", "vhost"))
        family.add(('say "hi"\nnow', "/"), value)
        family.add(("plain", "/"), value + 10)
    registry = CollectorRegistry(auto_describe=False)
    families = list(merge([sink]))

    class Static(Collector):
        def collect(self) -> list[Metric]:
            return families

    registry.register(Static())
    lines = [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]
    assert lines == [
        'tradeops_a{queue="say \\"hi\\"\\nnow",vhost="/"} 1.0',
        'tradeops_a{queue="plain",vhost="/"} 11.0',
        'tradeops_b{queue="say \\"hi\\"\\nnow",vhost="/"} 2.0',
        'tradeops_b{queue="plain",vhost="/"} 12.0',
    ]


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"status": "UP"}, "status", "UP"),
        ({"a": {"b": [1, {"c": 5}]}}, "a.b.1.c", 5),
        ({"a": 1}, "a.b", None),
        ([1, 2], "5", None),
        ("text", "status", None),
        ({"a": 1}, "", {"a": 1}),
    ],
)
def test_lookup_follows_dotted_paths_and_returns_none_where_they_lead_nowhere(
    document: object, path: str, expected: object
) -> None:
    assert lookup(document, path) == expected


def test_gzip_check_accepts_a_whole_stream_and_rejects_a_truncated_one(tmp_path: Path) -> None:
    base = tmp_path
    whole = base / "whole.gz"
    whole.write_bytes(gzip.compress(b"x" * 100_000))
    truncated = base / "truncated.gz"
    truncated.write_bytes(whole.read_bytes()[:50])
    garbage = base / "garbage.gz"
    garbage.write_bytes(b"not gzip at all")
    assert gzip_intact(whole, 1 << 20)
    assert not gzip_intact(truncated, 1 << 20)
    assert not gzip_intact(garbage, 1 << 20)


def test_rdb_check_wants_magic_and_eof_opcode(tmp_path: Path) -> None:
    base = tmp_path
    good = base / "good.rdb"
    good.write_bytes(b"REDIS0011" + b"\x00" * 10 + b"\xff" + b"\x00" * 8)
    bad = base / "bad.rdb"
    bad.write_bytes(b"NOTREDIS" + b"\x00" * 20)
    assert rdb_intact(good)
    assert not rdb_intact(bad)
