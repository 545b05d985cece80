"""docker_restart: restart or start one container and wait until it runs (seed 000 Issue 1; 003 ApplicationDown)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.client import DockerClient
from pydantic import Field

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError

# Pinned so that creating a client makes no request (auto-detection leaks a socket when the engine is down);
# 1.41 is served by every engine since 20.10.
DOCKER_API_VERSION = "1.41"


def engine_reachable(docker_host: str) -> None:
    """Connect to the engine's socket (closing it ourselves); raise TransientActionError when it does not answer.
    docker-py leaks its socket when a connection fails, so an unreachable engine is detected before it is used."""
    parts = urlsplit(docker_host)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(5)
                probe.connect(parts.path)
        else:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 2375), timeout=5):
                pass
    except OSError as error:
        raise TransientActionError(f"Docker engine at {docker_host} unreachable: {error}") from error


class DockerRestartParams(ActionParams):
    container: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    mode: Literal["restart", "start_if_stopped"] = "restart"
    stop_timeout_seconds: Annotated[int, Field(ge=0, le=300)] = 10
    wait_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0


class DockerRestartAction(Action):
    """Restarts a container by name (the rule's allowlist chooses it) and waits until it is running and,
    when it has a health check, healthy. `start_if_stopped` leaves a running container alone."""

    name = "docker_restart"
    params_model = DockerRestartParams

    def __init__(self, docker_host: str | None) -> None:
        self.docker_host = docker_host
        self._client: DockerClient | None = None

    def _docker(self) -> DockerClient:
        if self.docker_host is None:
            raise PermanentActionError("no Docker engine configured (backends.docker_host)")
        engine_reachable(self.docker_host)
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.docker_host, timeout=60, version=DOCKER_API_VERSION)
        return self._client

    def _restart(self, params: DockerRestartParams) -> ActionResult:
        try:
            container = self._docker().containers.get(params.container)
            container.reload()
            before = container.status
            if params.mode == "start_if_stopped" and before == "running":
                return ActionResult(f"{params.container} already running; left alone", changed=False)
            if before == "running":
                container.restart(timeout=params.stop_timeout_seconds)
            else:
                container.start()
            deadline = time.monotonic() + params.wait_seconds
            while True:
                container.reload()
                health = container.attrs.get("State", {}).get("Health", {}).get("Status")
                if container.status == "running" and health in (None, "healthy"):
                    return ActionResult(f"{params.container}: {before} -> running" + (f" ({health})" if health else ""))
                if time.monotonic() > deadline:
                    raise TransientActionError(
                        f"{params.container} not running and healthy after {params.wait_seconds}s "
                        f"(status {container.status}, health {health})"
                    )
                time.sleep(0.2)
        except docker.errors.NotFound as error:
            raise PermanentActionError(f"container {params.container} not found") from error
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as error:
            raise TransientActionError(f"Docker engine: {error}") from error

    async def run(self, params: DockerRestartParams, bound: Mapping[str, str]) -> ActionResult:
        return await asyncio.to_thread(self._restart, params)

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
