"""The escalation outbox: what the engine hands over to be paged, and the sender that delivers it."""

from __future__ import annotations

from typing import Protocol

from remediator.config import EscalationConfig
from remediator.escalation.channels import Escalation, Escalator


class Outbox(Protocol):
    """Where the engine puts escalations; delivering them is never the engine's work."""

    def channel_names(self) -> list[str]:
        """Return the configured channels' names."""

    async def enqueue(self, escalation: Escalation) -> None:
        """Record the escalation (or its resolve) for every channel before returning."""

    async def start(self) -> None:
        """Start delivering."""

    def reconfigure(self, config: EscalationConfig) -> None:
        """Deliver to the channels of a reloaded configuration from now on."""

    async def close(self) -> None:
        """Stop delivering and release connections."""


class InlineOutbox:
    """Sends at once, on the caller's time (the behaviour before the durable outbox)."""

    def __init__(self, config: EscalationConfig) -> None:
        self.escalator = Escalator(config)

    def channel_names(self) -> list[str]:
        """Return the configured channels' names."""
        return self.escalator.channel_names()

    async def enqueue(self, escalation: Escalation) -> None:
        """Send to every channel now."""
        await self.escalator.send(escalation)

    async def start(self) -> None:
        """Nothing runs in the background."""

    def reconfigure(self, config: EscalationConfig) -> None:
        """Use the reloaded channels."""
        self.escalator.config = config

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.escalator.close()
