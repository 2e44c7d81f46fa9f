"""The RabbitMQ side of long tasks: the consumer's deliveries in flight, re-sends, dead letters.

See :mod:`taskiq_kit.flow.long` for the design.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskiq_kit.flow.long_parts import RESENDS_HEADER, InFlight, KeptMessage, with_resends
from taskiq_kit.rabbit.consumer import Consumer
from taskiq_kit.rabbit.publisher import Outgoing, Publisher


def _outgoing(message: KeptMessage, resends: int) -> Outgoing:
    return Outgoing(
        body=with_resends(message.body, resends),
        headers={RESENDS_HEADER: resends},
        queue=message.queue,
        task_name=message.task_name,
        task_id=message.task_id,
        priority=message.priority,
    )


class RabbitLongTransport:
    """:class:`~taskiq_kit.flow.long.Transport` over a consumer and a publisher."""

    def __init__(self, consumer: Consumer, publisher: Publisher) -> None:
        self.consumer = consumer
        self.publisher = publisher

    def in_flight(self) -> Iterable[InFlight]:
        """The consumer's deliveries handed out and not settled."""
        return self.consumer.in_flight()

    async def resend(self, message: KeptMessage) -> None:
        """Publish ``message`` to its queue again (confirmed), its re-sends counted."""
        await self.publisher.send(_outgoing(message, message.resends + 1), None)

    async def dead_letter(self, message: KeptMessage, reason: str) -> None:
        """Publish ``message`` to the dead-letter queue (confirmed)."""
        await self.publisher.dead_letter(_outgoing(message, message.resends), reason)
