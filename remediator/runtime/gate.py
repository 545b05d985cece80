"""Webhook calls before decisions: Alertmanager is answered first, and no alert waits for long because of it.

One process both accepts webhook calls and decides their alerts. While a call is being handled, and for
`quiet_seconds` after the last one ended (Alertmanager's calls of one burst follow each other that closely), a
worker that has taken an alert waits, so a burst of calls is answered at the webhook's own pace and its alerts
are decided right after. The wait is bounded: once workers have been held back for `max_deferral_seconds`,
they stop waiting until every accepted alert has been decided, and they never wait while the queue is half
full. So a sustained flood slows the answers down to the deciding pace instead of starving the decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator


class AcceptanceGate:
    """Counts the webhook calls in progress; workers ask it for their turn before deciding an alert."""

    def __init__(
        self, max_deferral_seconds: float, quiet_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_deferral_seconds = max_deferral_seconds
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._calls = 0
        self._quiet = asyncio.Event()  # set: no call in progress, and none ended in the last quiet_seconds
        self._quiet.set()
        self._last_end = 0.0  # on the loop's clock
        self._settling: asyncio.TimerHandle | None = None
        self._waiting = 0
        self._deferring_since: float | None = None
        self._catching_up = False

    @property
    def catching_up(self) -> bool:
        """Whether workers have stopped waiting until the backlog is decided."""
        return self._catching_up

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Mark one webhook call as in progress for the duration of the block."""
        self._calls += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls:
                self._call_ended()

    def _call_ended(self) -> None:
        if self.quiet_seconds <= 0:
            self._quiet.set()
            return
        loop = asyncio.get_running_loop()
        self._last_end = loop.time()
        if self._settling is None:
            self._settling = loop.call_later(self.quiet_seconds, self._settle)

    def _settle(self) -> None:
        self._settling = None
        if self._calls:
            return  # that call's end starts the quiet period again
        loop = asyncio.get_running_loop()
        remaining = self._last_end + self.quiet_seconds - loop.time()
        if remaining > 0:  # another call came and went meanwhile
            self._settling = loop.call_later(remaining, self._settle)
        else:
            self._quiet.set()

    async def turn(self, backlog: int, capacity: int) -> None:
        """Return when a worker holding an alert may decide it: no call in progress or just ended, the deferral
        used up, or `backlog` (the alerts accepted and not yet decided) at half of `capacity` or more."""
        if backlog * 2 >= capacity:
            return
        self._waiting += 1
        try:
            # Checked again after each wake-up: another call may have started before this worker ran.
            while not self._quiet.is_set() and not self._catching_up:
                started = self._clock()
                if self._deferring_since is None:
                    self._deferring_since = started
                remaining = self._deferring_since + self.max_deferral_seconds - started
                if remaining <= 0:
                    self._catching_up = True
                    return
                try:
                    async with asyncio.timeout(remaining):
                        await self._quiet.wait()
                except TimeoutError:
                    self._catching_up = True
        finally:
            self._waiting -= 1

    def decided(self, backlog: int) -> None:
        """Note that a worker finished an alert with `backlog` accepted alerts left in the queue; once none is
        left (queued or held by a waiting worker), deferring may start again."""
        if backlog == 0 and self._waiting == 0:
            self._deferring_since = None
            self._catching_up = False
