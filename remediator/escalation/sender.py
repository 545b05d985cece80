"""The outbox's sender: one loop per channel, so a hanging channel never delays another (nor any decision).
Each POST runs under a timeout and follows no redirect (a 3xx is a failed attempt); failures retry with
exponential backoff and jitter. Over the channel's page rate, the due records are coalesced into one summary
page. Logs name the channel, never its URL or key."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from common.logs import log_event
from common.service import cancel_and_wait
from remediator.config import EscalationConfig
from remediator.escalation.channels import Channel, channels, summary_body, with_secrets
from remediator.escalation.records import OutboxRecord, OutboxStore
from remediator.metrics import RemediatorMetrics

logger = logging.getLogger("remediator.escalation")
CLAIM_LIMIT = 1000  # records one round may take (and so one summary may list)
WINDOW_SECONDS = 60.0
STATS_INTERVAL_SECONDS = 2.0
PRUNE_INTERVAL_SECONDS = 3600.0


def backoff(attempts: int, initial: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: exponential from `initial`, capped at `cap`,
    with jitter (a random point in the upper half, so retries of many records spread out)."""
    ceiling = min(cap, initial * 2 ** min(attempts - 1, 60))
    return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Send:
    """One POST of a round: one record, or a summary of several."""

    records: tuple[OutboxRecord, ...]
    summary: bool


def plan_round(records: Sequence[OutboxRecord], room: int, coalesce_resolves: bool) -> tuple[list[Send], list[int]]:
    """Split a round's due records into POSTs within `room` pages: one by one while they fit and leave a page
    for later; otherwise one summary of them (PagerDuty resolves, which cannot be coalesced, one by one as room
    allows). Return the sends and the ids left for a later round."""
    if room <= 0 or not records:
        return [], [record.id for record in records]
    if len(records) < room or (len(records) == 1 and room == 1):
        return [Send((record,), False) for record in records], []
    together = [r for r in records if coalesce_resolves or r.kind == "trigger"]
    alone = [r for r in records if not (coalesce_resolves or r.kind == "trigger")]
    sends = [Send(tuple(together), True)] if together else []
    sends += [Send((record,), False) for record in alone[: room - len(sends)]]
    sent = {record.id for send in sends for record in send.records}
    return sends, [record.id for record in records if record.id not in sent]


class RateWindow:
    """Pages sent to one channel in the trailing minute (this replica's)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: collections.deque[float] = collections.deque()

    def room(self, at: float) -> int:
        """How many pages may go now."""
        while self._sent and self._sent[0] <= at - WINDOW_SECONDS:
            self._sent.popleft()
        return max(0, self.per_minute - len(self._sent))

    def next_room_at(self) -> float:
        """When the oldest page leaves the window."""
        return self._sent[0] + WINDOW_SECONDS if self._sent else 0.0

    def note(self, at: float) -> None:
        """Count a page sent at `at`."""
        self._sent.append(at)

    def forget(self, at: float) -> None:
        """Uncount the page noted at `at` (the channel refused it: nobody was paged)."""
        with contextlib.suppress(ValueError):
            self._sent.remove(at)


def scrub(error: BaseException) -> str:
    """An error's description without its URL or host: the exception's type only."""
    return type(error).__name__


class Sender:
    """Delivers outbox records at least once: one task per channel, plus one refreshing the metrics."""

    def __init__(
        self,
        store: OutboxStore,
        config: EscalationConfig,
        replica: str,
        metrics: RemediatorMetrics,
        retention_days: int = 90,
    ) -> None:
        self.store = store
        self.retention_seconds = retention_days * 86400
        self.config = config
        self.replica = replica
        self.metrics = metrics
        self._channels = channels(config)
        self._windows: dict[str, RateWindow] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    async def start(self) -> None:
        """Free this replica's stale leases (its sends died with its last run) and start the loops."""
        await self.store.prepare()
        await self.store.release_leases(self.replica)
        self._session = aiohttp.ClientSession()
        self._tasks.append(asyncio.create_task(self._stats_loop()))
        self._start_loops()

    def _start_loops(self) -> None:
        for name in self._channels:
            if name not in self._loops or self._loops[name].done():
                self._wake.setdefault(name, asyncio.Event())
                self._loops[name] = asyncio.create_task(self._channel_loop(name))

    def reconfigure(self, config: EscalationConfig) -> None:
        """Send to the reloaded channels from now on (a removed channel's records wait, pending)."""
        self.config = config
        self._channels = channels(config)
        for name in list(self._loops):
            if name not in self._channels:
                self._loops.pop(name).cancel()
        for window in self._windows.values():
            window.per_minute = config.max_pages_per_minute
        if self._session is not None:
            self._start_loops()

    def wake(self, names: Sequence[str]) -> None:
        """New records for these channels: look now, not at the next poll."""
        for name in names:
            event = self._wake.get(name)
            if event is not None:
                event.set()

    async def close(self) -> None:
        """Stop the loops (a send in flight is abandoned: its record stays pending) and close the session."""
        await cancel_and_wait([*self._loops.values(), *self._tasks])
        self._loops.clear()
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()

    async def _channel_loop(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            try:
                pause, wakeable = await self.round(name)
            except Exception as error:  # noqa: BLE001 - the loop is a process boundary; it must keep going
                log_event(logger, logging.ERROR, "escalation_round_failed", channel=name, error=scrub(error))
                pause, wakeable = self.config.poll_interval_seconds, True
            if pause > 0 and not wakeable:
                await asyncio.sleep(pause)  # held back by the rate: new records wait and are coalesced
            elif pause > 0:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), pause)

    async def round(self, name: str) -> tuple[float, bool]:
        """Send what is due on the channel within its rate; return how long to wait before the next round, and
        whether a new record may cut that wait short (not when the rate holds the channel back)."""
        channel = self._channels[name]
        window = self._windows.setdefault(name, RateWindow(self.config.max_pages_per_minute))
        at = time.time()
        room = window.room(at)
        if room <= 0:
            return max(0.05, window.next_room_at() - at), False
        lease_until = at + self.config.lease_seconds
        records = await self.store.claim(name, self.replica, at, lease_until, CLAIM_LIMIT)
        if not records:
            return self.config.poll_interval_seconds, True
        sends, left = plan_round(records, room, coalesce_resolves=channel.shape != "pagerduty")
        try:
            for send in sends:
                if time.time() + self.config.send_timeout_seconds >= lease_until:
                    left += [record.id for record in send.records]  # the lease would not cover it
                    continue
                sent_at = time.time()
                window.note(sent_at)
                if not await self._attempt(channel, send):
                    window.forget(sent_at)  # refused for sure: no page reached a human
        finally:
            if left:
                await self.store.release(left, self.replica)
        if window.room(time.time()) * 2 < window.per_minute:
            # Over half the minute's pages gone: rounds spread out, so what comes meanwhile is coalesced.
            return WINDOW_SECONDS / window.per_minute, False
        return (0.0 if len(records) == CLAIM_LIMIT or not left else 0.05), True

    async def _attempt(self, channel: Channel, send: Send) -> bool:
        """POST once and record the outcome; return whether a human may have been paged (delivered, or an
        attempt whose outcome is unknown, such as a timeout)."""
        body = summary_body(channel, send.records) if send.summary else send.records[0].body
        ids = [record.id for record in send.records]
        error, refused = await self._post(channel, with_secrets(channel, body))
        if error is None:
            await self.store.delivered(ids, self.replica, time.time(), send.summary)
            self.metrics.escalation_deliveries.labels(channel.name, "delivered").inc()
            log_event(
                logger,
                logging.INFO,
                "escalation_delivered",
                channel=channel.name,
                records=len(ids),
                summary=send.summary,
                incident=send.records[0].incident if len(ids) == 1 else "",
            )
            return True
        self.metrics.escalation_deliveries.labels(channel.name, "failed").inc()
        self.metrics.escalation_failures.labels(channel.name).inc()
        at = time.time()
        cap, initial = self.config.backoff_max_seconds, self.config.backoff_initial_seconds
        retry_at = {r.id: at + backoff(r.attempts + 1, initial, cap, self._rng) for r in send.records}
        await self.store.failed(retry_at, self.replica, error)
        log_event(
            logger,
            logging.WARNING,
            "escalation_attempt_failed",
            channel=channel.name,
            records=len(ids),
            attempts=send.records[0].attempts + 1,
            error=error,
        )
        return not refused

    async def _post(self, channel: Channel, data: bytes) -> tuple[str | None, bool]:
        """POST once, following no redirect; return (None, False) when accepted (2xx), else a scrubbed error and
        whether the channel surely refused it (an HTTP answer, or no connection)."""
        assert self._session is not None
        timeout = self.config.send_timeout_seconds
        try:
            async with (
                asyncio.timeout(timeout),
                self._session.post(
                    channel.url,
                    data=data,
                    headers={"Content-Type": "application/json"},
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response,
            ):
                if 200 <= response.status < 300:
                    return None, False
                return f"HTTP {response.status}", True
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as error:
            return scrub(error), True
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return scrub(error), False

    async def _stats_loop(self) -> None:
        last_prune = 0.0
        while True:
            try:
                await self.refresh_metrics()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_SECONDS:
                    await self.store.prune(time.time() - self.retention_seconds)
                    last_prune = time.monotonic()
            except Exception as error:  # noqa: BLE001 - the loop is a process boundary; it must keep going
                log_event(logger, logging.ERROR, "escalation_stats_failed", error=scrub(error))
            await asyncio.sleep(STATS_INTERVAL_SECONDS)

    async def refresh_metrics(self) -> None:
        """Set the pending and oldest-age gauges of every channel (0 when nothing is pending)."""
        stats = await self.store.stats()
        at = time.time()
        for name in {*self._channels, *stats}:
            found = stats.get(name)
            pending = found.pending if found is not None else 0
            oldest = found.oldest_created_at if found is not None else None
            self.metrics.escalations_pending.labels(name).set(pending)
            self.metrics.escalation_oldest_pending_age.labels(name).set(max(0.0, at - oldest) if oldest else 0.0)
