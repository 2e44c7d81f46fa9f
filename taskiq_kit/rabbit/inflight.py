"""One RabbitMQ delivery from hand-out to settlement, which a long run may settle early.

Every settlement of a delivery (the run's ack, a batched ack, a dead letter) goes through its
:class:`InFlightDelivery`, so that a delivery acknowledged early (its message kept in the store:
see :mod:`taskiq_kit.flow.long`) is never acknowledged twice: RabbitMQ closes a channel on an
unknown delivery tag. The run's own ack then ends the kept message instead.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiormq.abc import DeliveredMessage

from taskiq_kit.flow.long_parts import KeptMessage, resends_of
from taskiq_kit.rabbit.messages import delivery_tag, outgoing_of
from taskiq_kit.rabbit.settle import Settler

#: Moves a message to the dead-letter queue; ``settle`` false when it was acknowledged already.
DeadLetter = Callable[[DeliveredMessage, Settler, str, str, bool], Awaitable[None]]


class InFlightDelivery:
    """A delivery handed to the worker, tracked until it is settled.

    Args:
        message: the delivery.
        settler: settles it on its channel.
        queue: the queue it came from.
        dead_letter: the consumer's dead-lettering.
        untrack: called once when the delivery is settled (or settled early).

    """

    __slots__ = (
        "_dead_letter",
        "_ended",
        "_untrack",
        "message",
        "queue",
        "received_at",
        "settler",
        "tag",
    )

    def __init__(
        self,
        message: DeliveredMessage,
        settler: Settler,
        queue: str,
        dead_letter: DeadLetter,
        untrack: Callable[[InFlightDelivery], None],
    ) -> None:
        self.message = message
        self.settler = settler
        self.queue = queue
        self.tag = delivery_tag(message)
        self.received_at = time.monotonic()
        self._dead_letter = dead_letter
        self._untrack = untrack
        self._ended: Callable[[], Awaitable[None]] | None = None

    @property
    def task_id(self) -> str:
        """The message id (the kit publishes the task id there)."""
        return self.message.header.properties.message_id or ""

    @property
    def kept(self) -> bool:
        """Whether it was acknowledged early, its message kept in the store."""
        return self._ended is not None

    @property
    def body(self) -> bytes:
        """The message body."""
        return self.message.body

    @property
    def stale(self) -> bool:
        """Whether its channel closed (RabbitMQ delivers it again, elsewhere or here)."""
        return self.settler.stale

    def kept_message(self) -> KeptMessage:
        """The message as the store keeps it (the headers RabbitMQ added left out)."""
        out = outgoing_of(self.message, self.queue)
        return KeptMessage(
            task_id=self.task_id,
            task_name=out.task_name,
            queue=out.queue,
            body=self.message.body,
            priority=out.priority,
            resends=resends_of(out.headers, self.message.body),
        )

    async def settle_early(self, on_done: Callable[[], Awaitable[None]]) -> None:
        """Acknowledge now (the message is kept elsewhere); the run's ack calls ``on_done``."""
        self._ended = on_done
        self._untrack(self)
        await self.settler.ack_now(self.tag)

    def ack(self) -> Awaitable[None]:
        """Acknowledge at once (or end the kept message)."""
        if self._ended is not None:
            return self._ended()
        self._untrack(self)
        return self.settler.ack_now(self.tag)

    def ack_later(self) -> Awaitable[None] | None:
        """Acknowledge with the next batch (or end the kept message)."""
        if self._ended is not None:
            return self._ended()
        self._untrack(self)
        self.settler.ack(self.tag)
        return None

    async def dead_letter(self, reason: str) -> None:
        """Move the message to the dead-letter queue (and end the kept message, if any)."""
        ended = self._ended
        if ended is None:
            self._untrack(self)
        await self._dead_letter(self.message, self.settler, self.queue, reason, ended is None)
        if ended is not None:
            await ended()
