"""The delivery gate: what every kit broker checks before a message reaches taskiq's Receiver.

taskiq's Receiver acknowledges (drops) messages it cannot parse or whose task it does not know.
The kit sends those to the transport's dead-letter queue instead, refuses messages delivered too
many times (a task that keeps killing workers), and drops expired and aborted tasks, recording why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq.acks import AckableMessage

from taskiq_kit.labels import read_timing
from taskiq_kit.results.status import TaskStatus

if TYPE_CHECKING:
    from taskiq.message import TaskiqMessage

    from taskiq_kit.base import KitBroker

logger = logging.getLogger("taskiq_kit.delivery")


@dataclass(slots=True)
class Delivery:
    """One message as a transport delivered it.

    Attributes:
        data: the raw message body.
        ack: settles the message as done.
        dead_letter: moves the message to the dead-letter queue with a reason, and settles it.
        attempt: how many times this message has been delivered, this time included.

    """

    data: bytes
    ack: Callable[[], Awaitable[None]]
    dead_letter: Callable[[str], Awaitable[None]]
    attempt: int = 1


class DeliveryGate:
    """Admits deliveries to the Receiver, dead-lettering or dropping the ones that must not run."""

    def __init__(self, broker: KitBroker, *, max_attempts: int) -> None:
        self.broker = broker
        self.max_attempts = max_attempts

    async def admit(self, delivery: Delivery) -> AckableMessage | None:
        """Return the message for the Receiver, or ``None`` when it was settled here."""
        try:
            message = self.broker.formatter.loads(delivery.data)
        except Exception as exc:  # noqa: BLE001 - any parse failure makes it poison
            await self._dead_letter(delivery, f"unparseable message: {type(exc).__name__}: {exc}")
            return None
        if self.broker.find_task(message.task_name) is None:
            await self._dead_letter(
                delivery,
                f"unknown task {message.task_name!r}: is its module imported by the worker?",
            )
            return None
        if delivery.attempt > self.max_attempts:
            await self._dead_letter(
                delivery,
                f"delivered {delivery.attempt} times without completing "
                f"(limit {self.max_attempts}); it may be crashing its worker",
            )
            return None
        now = time.time()
        if read_timing(message.labels).expired(now):
            logger.info(
                "Task %s (%s) expired before it ran; dropped.", message.task_id, message.task_name
            )
            await self._record(
                message, {"status": TaskStatus.EXPIRED, "finished_at": now, "updated_at": now}
            )
            await delivery.ack()
            return None
        record = await self.broker.result_backend.get_record(message.task_id)
        if record is not None and record.abort_requested_at is not None:
            logger.info(
                "Task %s (%s) was aborted before it ran; dropped.",
                message.task_id,
                message.task_name,
            )
            await self._record(
                message, {"status": TaskStatus.ABORTED, "finished_at": now, "updated_at": now}
            )
            await delivery.ack()
            return None
        return AckableMessage(data=delivery.data, ack=delivery.ack)

    async def _record(self, message: TaskiqMessage, fields: dict[str, Any]) -> None:
        try:
            await self.broker.result_backend.write_status(message.task_id, fields)
        except Exception:
            logger.exception("Cannot record the status of task %s.", message.task_id)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        logger.warning("Message sent to the dead-letter queue: %s", reason)
        await delivery.dead_letter(reason)
