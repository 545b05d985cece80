"""rabbitmq_purge: purge one queue, only while it is still over its limit (seed 000 Issue 3, Playbook 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import aio_pika
from aio_pika.abc import AbstractConnection
from pydantic import Field

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError


class RabbitMQPurgeParams(ActionParams):
    queue: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]
    min_messages: Annotated[int, Field(ge=0)] = 10_000


class RabbitMQPurgeAction(Action):
    """Checks the queue's depth with a passive declare and purges only when it exceeds min_messages."""

    name = "rabbitmq_purge"
    params_model = RabbitMQPurgeParams

    def __init__(self, amqp_url: str | None) -> None:
        self.amqp_url = amqp_url

    async def _connect(self) -> AbstractConnection:
        # A plain connection per run: a robust one keeps reconnecting in the background after a timeout.
        if self.amqp_url is None:
            raise PermanentActionError("no RabbitMQ configured (backends.amqp_url)")
        try:
            return await aio_pika.connect(self.amqp_url, timeout=10)
        except (OSError, aio_pika.exceptions.AMQPError) as error:
            raise TransientActionError(f"RabbitMQ: {error!r}") from error

    async def run(self, params: RabbitMQPurgeParams, bound: Mapping[str, str]) -> ActionResult:
        connection = await self._connect()
        try:
            return await self._purge(connection, params)
        finally:
            await connection.close()

    async def _purge(self, connection: AbstractConnection, params: RabbitMQPurgeParams) -> ActionResult:
        channel = await connection.channel()
        try:
            try:
                queue = await channel.declare_queue(params.queue, passive=True)
            except aio_pika.exceptions.ChannelClosed as error:
                raise PermanentActionError(f"queue {params.queue} does not exist") from error
            depth = int(queue.declaration_result.message_count or 0)
            if depth <= params.min_messages:
                return ActionResult(f"{params.queue} holds {depth} <= {params.min_messages}; not purged", changed=False)
            result = await queue.purge()
            return ActionResult(f"purged {params.queue}: {result.message_count} messages (depth was {depth})")
        finally:
            if not channel.is_closed:
                await channel.close()
