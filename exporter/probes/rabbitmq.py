"""Queue depth and consumers (seed 000, Issue 3 and Playbook 2): management API or AMQP passive declare."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aio_pika
import aiohttp
from aio_pika.abc import AbstractConnection

from exporter.config import RabbitMQConfig
from exporter.probes.base import NameFilter, Probe, ProbeError
from exporter.probes.http import fetch_json
from exporter.sink import Family, MetricSink

QUEUE_QUERY = "columns=name,vhost,messages_ready,messages_unacknowledged,consumers"
QUEUE_METRICS = {
    "messages_ready": ("tradeops_queue_messages_ready", "Messages ready for delivery in the queue."),
    "messages_unacknowledged": (
        "tradeops_queue_messages_unacknowledged",
        "Messages delivered and not yet acknowledged.",
    ),
    "consumers": ("tradeops_queue_consumers", "Consumers attached to the queue."),
}


QueueFilter = NameFilter  # queue names: include and exclude patterns, full match


QUEUE_LABELS = ("broker", "queue", "vhost")  # sorted, as MetricSink orders label names


QueueFamilies = list[tuple[str, Family]]


def queue_families(sink: MetricSink, keys: tuple[str, ...] = tuple(QUEUE_METRICS)) -> QueueFamilies:
    """The families of the queue gauges named by `keys` (QUEUE_METRICS' keys), looked up once per scrape."""
    return [(key, sink.family(*QUEUE_METRICS[key], "gauge", QUEUE_LABELS)) for key in keys]


def record_queue(families: QueueFamilies, broker: str, vhost: str, name: str, counts: Mapping[str, Any]) -> None:
    """Record one queue's depth gauges. A missing or null count is unknown, so its gauge is left out (a queue
    the broker has not counted yet is not reported empty); a count that is not a number fails the probe."""
    labels = (broker, name, vhost)
    try:
        for key, family in families:
            count = counts.get(key)
            if count is not None:
                family.add(labels, float(count))
    except (TypeError, ValueError) as error:
        raise ProbeError("bad_result", f"queue {name!r}: a count is not a number: {error}") from None


class RabbitMQProbe(Probe):
    """Reports every (filtered, capped) queue from the management API, or named queues over AMQP."""

    kind = "rabbitmq"

    def __init__(self, config: RabbitMQConfig, session: aiohttp.ClientSession, max_bytes: int) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.session = session  # the probe set's, closed with it; the credentials go per request
        self.max_bytes = max(max_bytes, 64 * 1024 * 1024)
        self.filter = QueueFilter(config.include, config.exclude)
        self.authorization = aiohttp.encode_basic_auth(config.username, config.resolved_password())
        self._amqp: AbstractConnection | None = None
        self._lock = asyncio.Lock()

    async def collect(self, sink: MetricSink) -> None:
        if self.config.management_url is not None:
            await self._collect_management(sink)
        else:
            await self._collect_amqp(sink)

    async def _collect_management(self, sink: MetricSink) -> None:
        # With the statistics database: without it (disable_stats) the listing is 2.4 times faster but carries
        # no consumer count, and /api/consumers, the other source, lists only the user's own consumers unless
        # it has the monitoring tag (both measured; docs/benchmarks.md). A count that is not there is not 0.
        base = str(self.config.management_url).rstrip("/")
        scope = f"/{quote(self.config.vhost, safe='')}" if self.config.vhost else ""
        # The probe set's shared session: the management API's credentials go with this request only, so they
        # never reach another probe's target.
        url = f"{base}/api/queues{scope}?{QUEUE_QUERY}"
        status, document = await fetch_json(
            self.session, url, self.max_bytes, headers={"Authorization": self.authorization}
        )
        if status == 401:
            raise ProbeError("auth", "management API refused the credentials")
        if status != 200:
            raise ProbeError("http_status", f"management API answered {status}")
        if not isinstance(document, list):
            raise ProbeError("bad_json", "management API answered something other than a JSON list of queues")
        queues = [  # an entry without a name string is no queue: left out
            queue
            for queue in document
            if isinstance(queue, dict) and isinstance(queue.get("name"), str) and self.filter.allows(queue["name"])
        ]
        if len(queues) > self.config.max_queues:  # the same queues kept in every scrape: the first by name
            queues.sort(key=_queue_key)
            sink.dropped_series += len(queues) - self.config.max_queues
            del queues[self.config.max_queues :]
        families = queue_families(sink)
        for queue in queues:
            record_queue(families, self.target, str(queue.get("vhost", "/")), queue["name"], queue)
        if queues and not any(family.samples for _, family in families):
            # Queues and not one count: the broker keeps no statistics (disable_metrics_collector), and the
            # queue alerts are blind. Said loudly rather than left to look like a quiet broker.
            sink.fail("no_statistics")

    async def _connection(self) -> AbstractConnection:
        async with self._lock:
            if self._amqp is None or self._amqp.is_closed:
                amqp_url = self.config.resolved_amqp_url()
                assert amqp_url is not None
                # Plain, not robust: a robust connection keeps reconnecting in the background after a timeout;
                # here the next scrape reconnects.
                self._amqp = await aio_pika.connect(amqp_url, timeout=self.timeout_seconds)
            return self._amqp

    async def _collect_amqp(self, sink: MetricSink) -> None:
        try:
            connection = await self._connection()
        except (OSError, aio_pika.exceptions.AMQPError) as error:
            raise ProbeError("connection", repr(error)) from error
        missing: list[str] = []
        families = queue_families(sink, ("messages_ready", "consumers"))  # a passive declare counts no unacked
        for name in self.config.queues:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                missing.append(name)
                continue
            result = queue.declaration_result
            counts = {"messages_ready": result.message_count, "consumers": result.consumer_count}
            record_queue(families, self.target, self.config.vhost or "/", name, counts)
            await channel.close()
        if missing:
            sink.fail("missing_queue")

    async def close(self) -> None:
        if self._amqp is not None:
            await self._amqp.close()


def _queue_key(queue: Any) -> tuple[str, str]:
    if isinstance(queue, dict):
        return str(queue.get("vhost", "")), str(queue.get("name", ""))
    return "", ""
