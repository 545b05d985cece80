"""The platform's queue consumers as the queue fault leaves them: hung, until their service's container restarts;
then the revived consumer works through the backlog on the real RabbitMQ queue and goes idle again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aio_pika

from common.logs import log_event
from sandbox import containers
from sandbox.context import SandboxContext

logger = logging.getLogger("sandbox.consumers")
DRAIN_SECONDS = 120  # a revived consumer gives up on a backlog it cannot finish in this long


def consumer_container(ctx: SandboxContext, queue: str) -> str | None:
    """The container of the service that consumes the queue, when the sandbox runs one for it."""
    service = dict(ctx.profile.queue_consumers).get(queue)
    return ctx.containers.get(service) if service is not None else None


async def hang(ctx: SandboxContext, queue: str) -> None:
    """Hang the queue's consumer: remember its container's start, so that a later restart revives it."""
    container = consumer_container(ctx, queue)
    if container is not None:
        ctx.state.hung_consumers[queue] = await containers.started_at(ctx.backends.docker(), container)


async def revive_restarted(ctx: SandboxContext) -> list[str]:
    """Revive each hung consumer whose container was restarted since it hung: it drains its queue in the
    background. Return the queues revived."""
    revived = []
    for queue, started in list(ctx.state.hung_consumers.items()):
        container = consumer_container(ctx, queue)
        if container is None:
            continue
        client = ctx.backends.docker()
        if not await containers.is_running(client, container):
            continue
        if await containers.started_at(client, container) == started:
            continue
        del ctx.state.hung_consumers[queue]
        ctx.state.draining[queue] = asyncio.create_task(drain(ctx, queue))
        revived.append(queue)
        log_event(logger, logging.INFO, "consumer_revived", queue=queue, container=container)
    return revived


async def drain(ctx: SandboxContext, queue_name: str, seconds: float = DRAIN_SECONDS) -> int:
    """Consume and acknowledge the queue's ready messages until it is empty (bounded); return how many."""
    channel = await ctx.channel()
    consumed = 0
    deadline = time.monotonic() + seconds
    try:
        await channel.set_qos(prefetch_count=500)
        queue = await channel.declare_queue(queue_name, passive=True)
        while time.monotonic() < deadline:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            await message.ack()
            consumed += 1
    except aio_pika.exceptions.AMQPError as error:
        log_event(logger, logging.WARNING, "consumer_failed", queue=queue_name, error=str(error))
    finally:
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.close()
        ctx.state.draining.pop(queue_name, None)
    log_event(logger, logging.INFO, "consumer_drained", queue=queue_name, messages=consumed)
    return consumed


async def stop(ctx: SandboxContext) -> None:
    """Forget the hung consumers and stop any that is draining."""
    ctx.state.hung_consumers.clear()
    tasks = list(ctx.state.draining.values())
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    ctx.state.draining.clear()
