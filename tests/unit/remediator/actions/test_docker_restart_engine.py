"""docker_restart against a stand-in Docker engine (HTTP over a Unix socket, as the real one): it restarts a
running container and starts a stopped one, waits for running and healthy, leaves a running one alone in
start_if_stopped mode, and classes a missing container permanent and an engine error or a container that does
not come up transient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.actions.docker_restart import DockerRestartAction, DockerRestartParams


@dataclass
class FakeEngine:
    """One container, `loki`: its status, and the health it reports after `healthy_after` inspections."""

    status: str = "running"
    health: str | None = None
    healthy_after: int = 0
    fail_with: int | None = None
    calls: list[str] = field(default_factory=list)
    inspections: int = 0

    async def inspect(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.calls.append(f"inspect {name}")
        if self.fail_with is not None:
            return web.json_response({"message": "engine trouble"}, status=self.fail_with)
        if name not in {"loki", "c0ffee"}:  # by name, then by the id the SDK reloads it by
            return web.json_response({"message": f"No such container: {name}"}, status=404)
        self.inspections += 1
        state: dict[str, Any] = {"Status": self.status}
        if self.health is not None:
            health = "healthy" if self.healthy_after and self.inspections > self.healthy_after else self.health
            state["Health"] = {"Status": health}
        return web.json_response({"Id": "c0ffee", "Name": "/loki", "State": state})

    async def restart(self, request: web.Request) -> web.Response:
        self.calls.append(f"restart t={request.query.get('t')}")
        self.status = "running"
        return web.Response(status=204)

    async def start(self, request: web.Request) -> web.Response:
        self.calls.append("start")
        self.status = "running"
        return web.Response(status=204)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[FakeEngine, str]]:
    fake = FakeEngine()
    app = web.Application()
    app.router.add_get("/v1.41/containers/{name}/json", fake.inspect)
    app.router.add_post("/v1.41/containers/{name}/restart", fake.restart)
    app.router.add_post("/v1.41/containers/{name}/start", fake.start)
    runner = web.AppRunner(app)
    await runner.setup()
    path = tmp_path / "docker.sock"
    await web.UnixSite(runner, str(path)).start()
    yield fake, f"unix://{path}"
    await runner.cleanup()


def params(**fields: Any) -> DockerRestartParams:
    return DockerRestartParams.model_validate({"container": "loki", "api_timeout_seconds": 5} | fields)


async def test_a_running_container_is_restarted_with_its_stop_timeout(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    result = await DockerRestartAction(url).run(params(stop_timeout_seconds=7), {})
    assert result.detail == "loki: running -> running"
    assert "restart t=7" in fake.calls
    assert "start" not in fake.calls


async def test_a_stopped_container_is_started(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.status = "exited"
    result = await DockerRestartAction(url).run(params(), {})
    assert result.detail == "loki: exited -> running"
    assert "start" in fake.calls
    assert not any(call.startswith("restart") for call in fake.calls)


async def test_start_if_stopped_leaves_a_running_container_alone(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    result = await DockerRestartAction(url).run(params(mode="start_if_stopped"), {})
    assert (result.detail, result.changed) == ("loki already running; left alone", False)
    assert not any(call.startswith(("restart", "start")) for call in fake.calls)


async def test_the_action_waits_until_the_health_check_passes(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.health, fake.healthy_after = "starting", 3
    result = await DockerRestartAction(url).run(params(), {})
    assert result.detail == "loki: running -> running (healthy)"
    assert fake.inspections > 3


async def test_a_container_that_stays_unhealthy_is_a_transient_failure(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.health = "unhealthy"
    with pytest.raises(
        TransientActionError, match=r"not running and healthy after 0.5s \(status running, health unhealthy\)"
    ):
        await DockerRestartAction(url).run(params(wait_seconds=0.5), {})


async def test_a_container_the_engine_does_not_know_is_a_permanent_failure(engine: tuple[FakeEngine, str]) -> None:
    _, url = engine
    with pytest.raises(PermanentActionError, match="container nosuch not found"):
        await DockerRestartAction(url).run(params(container="nosuch"), {})


async def test_an_engine_error_is_transient(engine: tuple[FakeEngine, str]) -> None:
    fake, url = engine
    fake.fail_with = 500
    with pytest.raises(TransientActionError, match="Docker engine"):
        await DockerRestartAction(url).run(params(), {})


async def test_an_engine_that_is_not_there_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientActionError, match="unreachable"):
        await DockerRestartAction(f"unix://{tmp_path}/none.sock").run(params(), {})


async def test_no_engine_configured_is_permanent() -> None:
    with pytest.raises(PermanentActionError, match="no Docker engine configured"):
        await DockerRestartAction(None).run(params(), {})


@pytest.mark.parametrize("container", ["", "-rm", "a b", "a/b", "x" * 129, "../etc"])
def test_a_container_name_docker_would_not_accept_is_refused(container: str) -> None:
    with pytest.raises(ValueError, match="container"):
        DockerRestartParams(container=container)
