"""The configuration of the probes issue 23 added: containers, websocket, actuator and the PostgreSQL thresholds;
a hostile value is a located error, and Docker's own timestamps and names are read as the engine writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import load
from exporter.probes.containers import _name, _started_at
from tests.unit.exporter.test_config import errors_of


def loads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "good.yml"
    path.write_text(text)
    load(path)


@pytest.mark.parametrize(
    "host", ["unix:///run/docker.sock", "tcp://127.0.0.1:2375", "http://docker-proxy:2375", "tcp://[::1]:2375"]
)
def test_a_docker_host_is_a_unix_socket_path_or_a_tcp_host_and_port(tmp_path: Path, host: str) -> None:
    loads(tmp_path, f"probes:\n  containers:\n    - {{name: e, docker_host: '{host}'}}\n")


@pytest.mark.parametrize(
    "host", ["unix://relative.sock", "tcp://127.0.0.1", "https://127.0.0.1:2376", "ssh://user@host", "npipe:////./x"]
)
def test_any_other_docker_host_is_refused_with_what_is_accepted(tmp_path: Path, host: str) -> None:
    rendered = errors_of(tmp_path, f"probes:\n  containers:\n    - {{name: e, docker_host: '{host}'}}\n")
    assert "probes.containers[0].docker_host" in rendered
    assert "TLS is not supported" in rendered


def test_container_patterns_are_re2_and_a_backreference_is_refused(tmp_path: Path) -> None:
    rendered = errors_of(tmp_path, "probes:\n  containers:\n    - {name: e, include: ['(a)\\1']}\n")
    assert "backreferences are not supported" in rendered


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/ws", "ftp://x/ws", "ws://"])
def test_a_websocket_url_must_be_ws_or_wss_with_a_host(tmp_path: Path, url: str) -> None:
    rendered = errors_of(tmp_path, f"probes:\n  websocket:\n    - {{name: w, url: '{url}'}}\n")
    assert "probes.websocket[0].url" in rendered


def test_websocket_message_bounds_are_checked(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path, "probes:\n  websocket:\n    - {name: w, url: 'ws://h/ws', max_message_bytes: 0, send: ''}\n"
    )
    assert "probes.websocket[0].max_message_bytes" in rendered
    assert "probes.websocket[0].send" in rendered


@pytest.mark.parametrize(
    "metric",
    [
        "{metric: '../env'}",  # no path out of /actuator/metrics
        "{metric: jvm.memory.used, tags: {area: 'a,b'}}",  # a comma would make the tags label ambiguous
        "{metric: ''}",
    ],
)
def test_an_actuator_meter_name_or_tag_that_could_leave_its_url_or_label_is_refused(
    tmp_path: Path, metric: str
) -> None:
    rendered = errors_of(
        tmp_path, f"probes:\n  actuator:\n    - {{name: a, base_url: 'http://h:8080/actuator', metrics: [{metric}]}}\n"
    )
    assert "probes.actuator[0].metrics[0]" in rendered


def test_an_actuator_probe_needs_at_least_one_meter(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path, "probes:\n  actuator:\n    - {name: a, base_url: 'http://h/actuator', metrics: []}\n"
    )
    assert "probes.actuator[0].metrics" in rendered


def test_slow_query_thresholds_are_positive_and_at_most_ten(tmp_path: Path) -> None:
    dsn = "dsn: 'postgresql://x@127.0.0.1/x'"
    assert "slow_query_seconds" in errors_of(
        tmp_path, f"probes:\n  postgres:\n    - {{name: p, {dsn}, slow_query_seconds: [0]}}\n"
    )
    assert "slow_query_seconds" in errors_of(
        tmp_path, f"probes:\n  postgres:\n    - {{name: p, {dsn}, slow_query_seconds: {list(range(1, 12))}}}\n"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T22:53:04.123456789Z", 1796165584.123456),
        ("2026-12-01T22:53:04Z", 1796165584.0),
        ("2026-12-01T23:53:04.5+01:00", 1796165584.5),
        ("0001-01-01T00:00:00Z", None),  # Docker's zero time: never started
        ("yesterday", None),
        (12, None),
        (None, None),
    ],
)
def test_docker_start_times_are_read_to_the_microsecond_and_the_zero_time_is_no_start(
    text: object, expected: float | None
) -> None:
    assert _started_at(text) == (pytest.approx(expected) if expected is not None else None)


def test_a_container_is_named_by_its_first_name_without_the_slash() -> None:
    assert _name({"Names": ["/web", "/alias"]}) == "web"
    assert _name({"Names": []}) is None
    assert _name({"Names": [7]}) is None
    assert _name({}) is None
