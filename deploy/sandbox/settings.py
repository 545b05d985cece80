"""The sandbox's settings: where each simulated service listens and which real components it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from common.config import StrictModel

Port = Annotated[int, Field(ge=1, le=65535)]


class SandboxSettings(StrictModel):
    """Everything the sandbox needs to run; built from flags, frozen once built."""

    profile: str = "mastertrade"
    host: str = "127.0.0.1"
    ports: dict[str, Port] = Field(default_factory=dict)
    control_port: Port = 8099
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/mastertrade"
    redis_url: str = "redis://127.0.0.1:6379/0"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    docker_host: str | None = None
    containers: dict[str, str] = Field(default_factory=dict)
    image: str = "tradeops/busybox:latest"
    backup_root: Path = Path("/var/lib/tradeops-sandbox/backups")
    collectors: Annotated[int, Field(ge=1, le=5000)] | None = None
    seed_generation: bool = True
