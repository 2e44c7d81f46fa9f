"""The delivery gate: what every kit broker checks before a message reaches taskiq's Receiver.

taskiq's Receiver acknowledges (drops) messages it cannot parse or whose task it does not know.
The kit sends those to the transport's dead-letter queue instead, refuses messages delivered too
many times (a task that keeps killing workers), and drops expired and aborted tasks, recording why.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.formatters.proxy_formatter import ProxyFormatter
from taskiq.message import TaskiqMessage

from taskiq_kit.labels import KICKED_AT, RETRIES, label_float, read_timing
from taskiq_kit.results.status import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from taskiq_kit.base import KitBroker

logger = logging.getLogger("taskiq_kit.delivery")

#: Label taskiq's ``Context.requeue()`` increments; a requeued message must run again.
_REQUEUE = "X-Taskiq-requeue"


def _already_completed(record: TaskRecord, message: TaskiqMessage) -> bool:
    """Whether ``message`` repeats a kick whose run has already finished.

    That is a duplicate send, or a redelivery after the result was saved but the
    acknowledgement was lost. One kick is identified by the task id and the instant of its first kick, which retries keep;
    a later kick of the same id (re-kicked on purpose) has a newer instant and runs.
    """
    if record.status not in (TaskStatus.SUCCESS, TaskStatus.FAILURE) or _REQUEUE in message.labels:
        return False
    kicked_at = label_float(message.labels.get(KICKED_AT))
    if kicked_at is None or record.kicked_at is None or abs(kicked_at - record.kicked_at) > 1e-6:
        return False
    attempt = int(label_float(message.labels.get(RETRIES)) or 0) + 1
    return attempt <= record.attempt


@dataclass(slots=True)
class Delivery:
    """One message as a transport delivered it.

    Attributes:
        data: the raw message body.
        ack: settles the message as done; it may return ``None`` when it settles without waiting
            (a transport batching its acknowledgements).
        dead_letter: moves the message to the dead-letter queue with a reason, and settles it.
        attempt: how many times this message has been delivered, this time included.
        ack_later: settles the message as done, possibly a few milliseconds later, batched with
            others (``None``: the transport has no such thing). Used only for acks asked for
            after the task's result was saved; an ack asked for earlier (``ack_type``
            ``when_received`` / ``when_executed``) must not be delayed, since a crash in
            between would run the task again.

    """

    data: bytes
    ack: Callable[[], Awaitable[None] | None]
    dead_letter: Callable[[str], Awaitable[None]]
    attempt: int = 1
    ack_later: Callable[[], Awaitable[None] | None] | None = None


class _Drop(NamedTuple):
    """A message settled without running; ``record_as``: the status to record, if any."""

    record_as: TaskStatus | None


class HandoffFormatter(ProxyFormatter):
    """taskiq's formatter, plus a hand-off: the Receiver gets the message the gate already parsed.

    The gate must parse each body to check it; without this, taskiq's Receiver would parse the
    same bytes again. Entries are keyed by the very bytes object the gate admitted, and bounded.
    """

    _MAX_WAITING = 10_000

    def __init__(self, broker: AsyncBroker) -> None:
        super().__init__(broker)
        self._parsed: dict[int, tuple[bytes, TaskiqMessage]] = {}

    def hand_off(self, data: bytes, message: TaskiqMessage) -> None:
        """Keep ``message`` for the next :meth:`loads` of exactly ``data``."""
        if len(self._parsed) >= self._MAX_WAITING:
            self._parsed.clear()
        self._parsed[id(data)] = (data, message)

    def loads(self, message: bytes) -> TaskiqMessage:
        """Return the message parsed by the gate for these bytes, or parse them."""
        waiting = self._parsed.pop(id(message), None)
        if waiting is not None and waiting[0] is message:
            return waiting[1]
        return super().loads(message)


class DeliveryGate:
    """Admits deliveries to the Receiver, dead-lettering or dropping the ones that must not run."""

    #: Task ids remembered as "result saved" at most; beyond, the memory is cleared (acks of
    #: forgotten ids are then written at once: the safe side).
    _MAX_SAVED = 10_000

    def __init__(self, broker: KitBroker, *, max_attempts: int) -> None:
        self.broker = broker
        self.max_attempts = max_attempts
        self._saved: set[str] = set()

    def result_saved(self, task_id: str) -> None:
        """Note that the result of the admitted run of ``task_id`` is saved (its ack may wait)."""
        if len(self._saved) >= self._MAX_SAVED:
            self._saved.clear()
        self._saved.add(task_id)

    def _settle(self, delivery: Delivery, task_id: str) -> Awaitable[None] | None:
        """The Receiver's ack: batched when the result is saved, else written at once."""
        saved = self._saved
        if delivery.ack_later is not None and task_id in saved:
            saved.discard(task_id)
            return delivery.ack_later()
        return delivery.ack()

    async def admit(self, delivery: Delivery) -> AckableMessage | None:
        """Return the message for the Receiver, or ``None`` when it was settled here."""
        try:
            message = self.broker.formatter.loads(delivery.data)
        except Exception as exc:  # noqa: BLE001 - any parse failure makes it poison
            await self._dead_letter(delivery, f"unparseable message: {type(exc).__name__}: {exc}")
            return None
        poison = self._poison_reason(message, delivery.attempt)
        if poison is not None:
            await self._dead_letter(delivery, poison)
            return None
        drop = await self._drop(message)
        if drop is None:
            formatter = self.broker.formatter
            if isinstance(formatter, HandoffFormatter):
                formatter.hand_off(delivery.data, message)
            if delivery.ack_later is None:
                return AckableMessage(data=delivery.data, ack=delivery.ack)
            self._saved.discard(message.task_id)  # only a save after this admission counts
            ack = functools.partial(self._settle, delivery, message.task_id)
            return AckableMessage(data=delivery.data, ack=ack)
        if drop.record_as is not None:
            now = time.time()
            fields = {"status": drop.record_as, "finished_at": now, "updated_at": now}
            await self._record(message, fields)
        settled = delivery.ack()
        if settled is not None:
            await settled
        return None

    def _poison_reason(self, message: TaskiqMessage, attempt: int) -> str | None:
        """Why a parsed message must go to the dead-letter queue, if it must."""
        if self.broker.find_task(message.task_name) is None:
            return f"unknown task {message.task_name!r}: is its module imported by the worker?"
        if attempt > self.max_attempts:
            return (
                f"delivered {attempt} times without completing "
                f"(limit {self.max_attempts}); it may be crashing its worker"
            )
        return None

    async def _drop(self, message: TaskiqMessage) -> _Drop | None:
        """Why a message must not run (and the status to record), or ``None`` to run it."""
        if read_timing(message.labels).expired(time.time()):
            logger.info(
                "Task %s (%s) expired before it ran; dropped.", message.task_id, message.task_name
            )
            return _Drop(TaskStatus.EXPIRED)
        record = await self.broker.result_backend.get_record(message.task_id)
        if record is None:
            return None
        if _already_completed(record, message):
            logger.info("Task %s already completed this kick; duplicate dropped.", message.task_id)
            return _Drop(record_as=None)  # its record already tells the outcome
        if record.abort_requested_at is not None:
            logger.info(
                "Task %s (%s) was aborted before it ran; dropped.",
                message.task_id,
                message.task_name,
            )
            return _Drop(TaskStatus.ABORTED)
        return None

    async def _record(self, message: TaskiqMessage, fields: dict[str, Any]) -> None:
        try:
            await self.broker.result_backend.write_status(message.task_id, fields)
        except Exception:
            logger.exception("Cannot record the status of task %s.", message.task_id)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        logger.warning("Message sent to the dead-letter queue: %s", reason)
        await delivery.dead_letter(reason)
