"""Bounds on running actions whose size a reload may change: the concurrency slots and the action registries
still in use by running actions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from remediator.actions.base import ActionRegistry


class Slots:
    """At most `capacity` holders at once; a new capacity applies to the next take, running holders finish."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.taken = 0
        self._changed = asyncio.Condition()

    async def resize(self, capacity: int) -> None:
        """Set a new capacity and wake the waiters it lets in."""
        async with self._changed:
            self.capacity = capacity
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[None]:
        """Hold one slot for the block, waiting for one if all are taken."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.taken < self.capacity)
            self.taken += 1
        try:
            yield
        finally:
            async with self._changed:
                self.taken -= 1
                self._changed.notify_all()


class RegistryLeases:
    """The action registry in force, and the ones a reload replaced, each closed once no action of it runs."""

    def __init__(self, registry: ActionRegistry) -> None:
        self.current = registry
        self._running: dict[int, tuple[ActionRegistry, int]] = {}
        self._retired: list[ActionRegistry] = []

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[ActionRegistry]:
        """Use the current registry for one action; a reload meanwhile does not close it under the action."""
        registry = self.current
        _, count = self._running.get(id(registry), (registry, 0))
        self._running[id(registry)] = (registry, count + 1)
        try:
            yield registry
        finally:
            _, count = self._running[id(registry)]
            if count == 1:
                del self._running[id(registry)]
                if registry in self._retired:
                    self._retired.remove(registry)
                    await registry.close()
            else:
                self._running[id(registry)] = (registry, count - 1)

    async def replace(self, registry: ActionRegistry) -> None:
        """Put a new registry in force; close the old one now if idle, else when its last action ends."""
        old, self.current = self.current, registry
        if id(old) in self._running:
            self._retired.append(old)
        else:
            await old.close()

    async def close(self) -> None:
        """Close the registry in force (at shutdown, once no action runs)."""
        await self.current.close()
        for registry in self._retired:
            await registry.close()
        self._retired.clear()
