"""Evidence texts are scrubbed of secrets and bounded; probes without a backend say "not configured"; hostile
label values cannot pick another URL, queue path or container; the probe models are strict."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import TypeAdapter, ValidationError

from common.http import SharedSession
from remediator.playbook.evidence import EvidenceBackends, gather
from remediator.playbook.scrub import bounded, scrub
from remediator.playbook.specs import (
    ContainerLogsProbe,
    DiagnoseProbe,
    HttpGetProbe,
    PostgresSessionsProbe,
    PromQLProbe,
    RabbitQueueProbe,
    RedisInfoProbe,
)

SECRETS = [
    ("postgresql://tradeops:hunter2@db:5432/trading", "hunter2"),
    ("amqp://guest:hunter2@rabbit:5672/", "hunter2"),
    ("redis://:hunter2@redis:6379/0", "hunter2"),
    ("host=db user=app password=hunter2 dbname=x", "hunter2"),
    ("connect failed: password='hunter 2'", "hunter 2"),
    ('{"user": "app", "password": "hunter2"}', "hunter2"),
    ("GET /status?api_key=hunter2&x=1", "hunter2"),
    ("Authorization: Basic aHVudGVyMjpodW50ZXIy", "aHVudGVyMjpodW50ZXIy"),
    ("authorization=Bearer abc.def.ghi", "abc.def.ghi"),
    ("curl -H 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig' http://x", "eyJhbGciOiJIUzI1NiJ9"),
    ("ALTER ROLE app PASSWORD 'hunter2'", "hunter2"),
    ("TOKEN: hunter2", "hunter2"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_scrub_masks_the_secret_and_keeps_the_rest(text: str, secret: str) -> None:
    scrubbed = scrub(text)
    assert secret not in scrubbed
    assert "***" in scrubbed


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = 'queue orders: 1234 messages, 0 consumers; up{job="api"} 1; http://127.0.0.1:9090/graph'
    assert scrub(text) == text


def test_bounded_text_fits_its_bytes_and_says_it_was_cut() -> None:
    text = bounded("訂單 " * 2000, 200)
    assert len(text.encode()) <= 200
    assert text.endswith("(truncated)")
    assert bounded("short", 200) == "short"


def test_a_secret_cut_where_it_was_read_is_dropped_with_its_word() -> None:
    # The read stopped inside a DSN: what is left no longer looks like userinfo, so the partial word must go.
    text = bounded("connecting to postgresql://app:hunt", 200, cut=True)
    assert "hunt" not in text
    assert text.startswith("connecting to")


@pytest.fixture
async def http() -> AsyncIterator[SharedSession]:
    session = SharedSession("tradeops-test")
    yield session
    await session.close()


async def test_every_probe_without_its_backend_says_not_configured(http: SharedSession) -> None:
    probes: list[DiagnoseProbe] = [
        PromQLProbe(kind="promql", name="p", query="vector(1)"),
        HttpGetProbe(kind="http_get", name="h", url="http://127.0.0.1/status"),
        ContainerLogsProbe(kind="container_logs", name="c", container="api"),
        PostgresSessionsProbe(kind="postgres_sessions", name="pg"),
        RabbitQueueProbe(kind="rabbitmq_queue", name="q", queue="orders"),
        RedisInfoProbe(kind="redis_info", name="r"),
    ]
    evidence = await gather(probes, {}, EvidenceBackends(http=http), deadline_seconds=5)
    assert [item.name for item in evidence] == ["p", "h", "c", "pg", "q", "r"]
    for item in evidence:
        assert not item.ok
        assert item.text.startswith("not configured"), item


async def test_no_probes_gather_nothing(http: SharedSession) -> None:
    assert await gather([], {}, EvidenceBackends(http=http), deadline_seconds=1) == []


async def test_a_hostile_value_cannot_leave_the_allowed_url_or_name_another_container(http: SharedSession) -> None:
    asked: list[str] = []

    def allowed(url: str) -> bool:
        asked.append(url)
        return url.startswith("http://127.0.0.1:1/providers/")

    backends = EvidenceBackends(http=http, url_allowed=allowed, docker_host="unix:///nonexistent/docker.sock")
    probes: list[DiagnoseProbe] = [
        HttpGetProbe(kind="http_get", name="h", url="http://127.0.0.1:1/providers/{p}/status"),
        ContainerLogsProbe(kind="container_logs", name="c", container="{svc}"),
        PromQLProbe(kind="promql", name="unbound", query='x{a="{nope}"}'),
    ]
    bound = {"p": "../../admin?x=1#", "svc": "../api; rm -rf /"}
    h, c, unbound = await gather(probes, bound, backends, deadline_seconds=5)
    assert asked == ["http://127.0.0.1:1/providers/..%2F..%2Fadmin%3Fx%3D1%23/status"]
    assert not h.ok  # nothing listens on port 1
    assert (c.ok, "is not a container name" in c.text) == (False, True)
    assert not unbound.ok


def test_probe_models_are_strict_and_chosen_by_kind() -> None:
    adapter: TypeAdapter[DiagnoseProbe] = TypeAdapter(DiagnoseProbe)
    probe = adapter.validate_python({"kind": "container_logs", "name": "logs", "container": "{service}", "tail": 50})
    assert isinstance(probe, ContainerLogsProbe)
    for bad in (
        {"kind": "shell", "name": "x"},
        {"kind": "redis_info", "name": "x", "extra": 1},
        {"kind": "container_logs", "name": "x", "container": "a b"},
        {"kind": "container_logs", "name": "x", "container": "api", "tail": 0},
        {"kind": "postgres_sessions", "name": "bad name"},
    ):
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)
    with pytest.raises(ValidationError):
        probe.model_copy(update={"tail": 1}).__setattr__("tail", 2)


async def test_an_instance_label_fills_the_host_of_a_status_url_and_a_hostile_one_is_refused(
    http: SharedSession,
) -> None:
    from aiohttp import web  # noqa: PLC0415

    from tests.processes import served  # noqa: PLC0415

    async def status(_request: web.Request) -> web.Response:
        return web.Response(text="gate: open")

    app = web.Application()
    app.router.add_get("/status", status)
    async with served(app) as base:
        backends = EvidenceBackends(http=http, url_allowed=lambda url: url.startswith("http://127.0.0.1:"))
        probe = HttpGetProbe(kind="http_get", name="gate", url="http://{instance}/status")
        (seen,) = await gather([probe], {"instance": base.removeprefix("http://")}, backends, deadline_seconds=5)
        (hostile,) = await gather([probe], {"instance": "127.0.0.1:1@evil.example"}, backends, deadline_seconds=5)
    assert seen.ok, seen.text  # the host:port goes in as it is, not percent-quoted into "127.0.0.1%3A..."
    assert "gate: open" in seen.text
    assert not hostile.ok
    assert "is not a host[:port]" in hostile.text
