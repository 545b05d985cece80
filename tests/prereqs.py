"""Where the real components of the test suite live, and how a test asks for one."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from urllib.parse import urlsplit

import docker
import docker.errors
import pytest

POSTGRES_ADMIN_DSN = os.environ.get("TRADEOPS_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TRADEOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
AMQP_URL = os.environ.get("TRADEOPS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBITMQ_API = os.environ.get("TRADEOPS_TEST_RABBITMQ_API", "http://guest:guest@127.0.0.1:15672")
DOCKER_HOST = os.environ.get("TRADEOPS_DOCKER_HOST", "unix:///run/tradeops-docker/docker.sock")
TEST_IMAGE = os.environ.get("TRADEOPS_TEST_IMAGE", "tradeops/busybox:latest")


def missing(what: str) -> None:
    """Skip the test because a prerequisite is missing, or fail it under CI=true, saying what is missing."""
    message = f"prerequisite missing: {what} (run `make prereqs`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def tcp_reachable(url: str, default_port: int) -> bool:
    """Return whether the URL's host:port accepts a TCP connection within a second."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def require_tcp(url: str, default_port: int, what: str) -> str:
    """Return the URL when its server is reachable; otherwise skip (or fail under CI)."""
    if not tcp_reachable(url, default_port):
        missing(f"{what} at {url}")
    return url


def require_binary(name: str) -> str:
    """Return the path of a program on PATH; otherwise skip (or fail under CI)."""
    path = shutil.which(name)
    if path is None:
        missing(f"program {name}")
    assert path is not None
    return path


def require_docker() -> docker.DockerClient:
    """Return a client of the test Docker engine with the test image present; otherwise skip (or fail)."""
    try:
        client = docker.DockerClient(base_url=DOCKER_HOST, timeout=30)
        client.ping()
        client.images.get(TEST_IMAGE)
    except (docker.errors.DockerException, OSError) as error:
        missing(f"Docker engine at {DOCKER_HOST} with image {TEST_IMAGE}: {error}")
        raise
    return client


def unique(prefix: str) -> str:
    """Return a name unique to this test run (databases, queues, containers)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
