"""docker_restart's client: its timeout comes from the rule, and a restart cancelled by the rule's deadline
does not keep its call to the engine open past that timeout (against a socket that accepts and never answers)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from remediator.actions.base import TransientActionError
from remediator.actions.docker_restart import DockerRestartAction, DockerRestartParams


@dataclass
class SilentEngine:
    """A Unix socket where an engine would be: it accepts every connection, reads, and never answers."""

    path: Path
    accepted: int = 0
    closed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:  # the listening socket was closed: the test is over
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self.hold, args=(connection,), daemon=True).start()

    def hold(self, connection: socket.socket) -> None:
        with connection:
            while connection.recv(65536):
                pass
        with self.lock:
            self.closed += 1

    def open_connections(self) -> int:
        with self.lock:
            return self.accepted - self.closed


@pytest.fixture
def silent_engine(tmp_path: Path) -> Iterator[SilentEngine]:
    engine = SilentEngine(tmp_path / "docker.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(engine.path))
    server.listen(16)
    threading.Thread(target=engine.serve, args=(server,), daemon=True).start()
    yield engine
    server.close()


def test_the_client_gives_up_after_the_rules_api_timeout(tmp_path: Path) -> None:
    action = DockerRestartAction(f"unix://{tmp_path}/docker.sock")
    client = action.client(DockerRestartParams(container="loki", api_timeout_seconds=7))
    try:
        assert client.api.timeout == 7
    finally:
        client.close()
    default = action.client(DockerRestartParams(container="loki"))
    try:
        assert default.api.timeout == 10
    finally:
        default.close()


def test_the_own_timeout_adds_the_stop_timeout_the_api_timeout_and_the_wait() -> None:
    params = DockerRestartParams(container="loki", stop_timeout_seconds=10, api_timeout_seconds=5, wait_seconds=60)
    assert params.own_timeout()[:2] == ("wait_seconds", 75)


async def test_a_restart_cancelled_by_its_deadline_closes_its_engine_connection_within_the_client_timeout(
    silent_engine: SilentEngine,
) -> None:
    action = DockerRestartAction(f"unix://{silent_engine.path}")
    params = DockerRestartParams(container="loki", api_timeout_seconds=1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):  # the engine runs every action under the rule's deadline like this
            await action.run(params, {})
    assert silent_engine.accepted >= 2  # the reachability probe, then the SDK's call that hangs
    # The bound is the 1 s client timeout; wait far longer than that, far less than the old fixed 60 s.
    deadline = time.monotonic() + 15
    while silent_engine.open_connections() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert silent_engine.open_connections() == 0


async def test_a_restart_against_an_engine_that_never_answers_fails_transiently(silent_engine: SilentEngine) -> None:
    action = DockerRestartAction(f"unix://{silent_engine.path}")
    with pytest.raises(TransientActionError, match="Docker engine"):
        await action.run(DockerRestartParams(container="loki", api_timeout_seconds=1), {})
