"""Abort signals over RabbitMQ, for deployments without Redis: one fanout exchange.

Every listening process binds an exclusive, server-named queue to the exchange; aio-pika's robust
connection re-declares it and its consumer after a reconnect. Signals sent while a process is
disconnected are lost to it: the workers' reconciliation poll covers that.
"""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from taskiq_kit.abort.signal import AbortListener, AbortSignal
from taskiq_kit.rabbit.connection import RabbitConnection

logger = logging.getLogger("taskiq_kit.rabbit")


class RabbitAbortSignal(AbortSignal):
    """Pushes abort requests through a RabbitMQ fanout exchange.

    Args:
        url: ``amqp://`` URL of RabbitMQ.
        exchange: name of the fanout exchange.
        connect_timeout: seconds to wait for a connection.
        reconnect_interval: seconds between reconnection attempts.

    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "taskiq-kit.abort",
        connect_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        self.exchange_name = exchange
        self.connection = RabbitConnection(
            url,
            connect_timeout=connect_timeout,
            reconnect_interval=reconnect_interval,
            name=f"taskiq-kit abort signals ({exchange})",
        )
        self._exchange: AbstractExchange | None = None
        self._callback: AbortListener | None = None
        self._listening = False

    def __repr__(self) -> str:
        return f"RabbitAbortSignal({self.connection.target!r}, exchange={self.exchange_name!r})"

    async def _declare(self) -> AbstractExchange:
        if self._exchange is None:
            channel = await (await self.connection.get()).channel()
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.FANOUT, durable=True
            )
        return self._exchange

    async def publish(self, task_id: str) -> None:
        """Send the id to every listening process."""
        exchange = await self._declare()
        await exchange.publish(aio_pika.Message(task_id.encode()), routing_key="")

    async def listen(self, callback: AbortListener) -> None:
        """Bind an exclusive queue of this process and call ``callback`` for every id.

        Listening again before :meth:`shutdown` replaces the callback; it binds no second queue.
        """
        self._callback = callback
        if self._listening:
            return
        self._listening = True
        try:
            exchange = await self._declare()
            channel = await (await self.connection.get()).channel()
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(exchange)
            await queue.consume(self._on_message, no_ack=True)
        except BaseException:
            self._listening = False
            raise

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._callback is not None:
            self._callback(message.body.decode())

    async def shutdown(self) -> None:
        """Close the connection, the exclusive queue with it (idempotent)."""
        self._exchange = None
        self._listening = False
        await self.connection.close()
