"""docker_restart: restart or start one container and wait until it runs (seed 000 Issue 1; 003 ApplicationDown).

The Docker SDK blocks, so the restart runs in a thread with a client of its own whose timeout is the rule's
`api_timeout_seconds` (the restart call gets the container's stop timeout on top, as docker-py adds it). When
the rule's deadline cancels the wait, the thread is told to stop: it makes no further call, and the one in
flight ends within its client timeout (`api_timeout_seconds`, plus `stop_timeout_seconds` for the restart call).
"""

from __future__ import annotations

import asyncio
import socket
import threading
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


POLL_SECONDS = 0.2


def engine_reachable(docker_host: str, timeout: float = 5.0) -> None:
    """Connect to the engine's socket (closing it ourselves); raise TransientActionError when it does not answer.
    docker-py leaks its socket when a connection fails, so an unreachable engine is detected before it is used."""
    parts = urlsplit(docker_host)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(timeout)
                probe.connect(parts.path)
        else:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 2375), timeout=timeout):
                pass
    except OSError as error:
        raise TransientActionError(f"Docker engine at {docker_host} unreachable: {error}") from error


class DockerRestartParams(ActionParams):
    container: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    mode: Literal["restart", "start_if_stopped"] = "restart"
    stop_timeout_seconds: Annotated[int, Field(ge=0, le=300)] = 10
    wait_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    api_timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 10

    def own_timeout(self) -> tuple[str, float, str]:
        """The time the action's own timeouts allow it (the restart call, then the wait until running), the
        parameter to locate it at, and how it adds up; the rule's deadline must cover it."""
        seconds = self.stop_timeout_seconds + self.api_timeout_seconds + self.wait_seconds
        how = (
            f"stop_timeout_seconds {self.stop_timeout_seconds:g} + api_timeout_seconds "
            f"{self.api_timeout_seconds:g} + wait_seconds {self.wait_seconds:g}"
        )
        return "wait_seconds", seconds, how


class StoppedError(TransientActionError):
    """The restart's wait was cancelled (the rule's deadline): its thread makes no further call."""


class DockerRestartAction(Action):
    """Restarts a container by name (the rule's allowlist chooses it) and waits until it is running and,
    when it has a health check, healthy. `start_if_stopped` leaves a running container alone."""

    name = "docker_restart"
    params_model = DockerRestartParams

    def __init__(self, docker_host: str | None) -> None:
        self.docker_host = docker_host

    def client(self, params: DockerRestartParams) -> DockerClient:
        """A client of the engine whose every call gives up after the rule's `api_timeout_seconds` (creating it
        makes no request: the API version is pinned)."""
        if self.docker_host is None:
            raise PermanentActionError("no Docker engine configured (backends.docker_host)")
        return docker.DockerClient(
            base_url=self.docker_host, timeout=params.api_timeout_seconds, version=DOCKER_API_VERSION
        )

    def _restart(self, params: DockerRestartParams, stop: threading.Event) -> ActionResult:
        client = self.client(params)
        try:
            return self._restart_with(client, params, stop)
        except docker.errors.NotFound as error:
            raise PermanentActionError(f"container {params.container} not found") from error
        except (docker.errors.APIError, docker.errors.DockerException, OSError) as error:
            raise TransientActionError(f"Docker engine: {error}") from error
        finally:
            client.close()

    def _restart_with(self, client: DockerClient, params: DockerRestartParams, stop: threading.Event) -> ActionResult:
        def step() -> None:
            if stop.is_set():
                raise StoppedError(f"{params.container}: stopped by the rule's deadline")

        assert self.docker_host is not None  # client() checked it
        engine_reachable(self.docker_host, min(5.0, params.api_timeout_seconds))
        step()
        container = client.containers.get(params.container)
        step()
        container.reload()
        before = container.status
        if params.mode == "start_if_stopped" and before == "running":
            return ActionResult(f"{params.container} already running; left alone", changed=False)
        step()
        if before == "running":
            container.restart(timeout=params.stop_timeout_seconds)
        else:
            container.start()
        deadline = time.monotonic() + params.wait_seconds
        while True:
            step()
            container.reload()
            health = container.attrs.get("State", {}).get("Health", {}).get("Status")
            if container.status == "running" and health in (None, "healthy"):
                return ActionResult(f"{params.container}: {before} -> running" + (f" ({health})" if health else ""))
            if time.monotonic() > deadline:
                raise TransientActionError(
                    f"{params.container} not running and healthy after {params.wait_seconds}s "
                    f"(status {container.status}, health {health})"
                )
            stop.wait(POLL_SECONDS)

    async def run(self, params: DockerRestartParams, bound: Mapping[str, str]) -> ActionResult:
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._restart, params, stop)
        finally:
            # Cancelled (the rule's deadline) or done: the thread makes no further call; the one in flight ends
            # within its client timeout.
            stop.set()
