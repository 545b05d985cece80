"""Fixtures the integration tests share."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A loopback port whose socket accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel completes handshakes; nothing ever reads or answers
    yield server.getsockname()[1]
    server.close()
