"""The delivery gate: what every kit broker checks before a message reaches taskiq's Receiver.

taskiq's Receiver acknowledges (drops) messages it cannot parse or whose task it does not know,
and leaves unsettled for ever one whose ``ack_type`` it cannot read. The kit sends those to the
transport's dead-letter queue instead, with a reason; refuses messages that started too many
times without finishing (a task that keeps killing workers); and drops expired and aborted
tasks, recording why. Store outages are waited out here, never raised into the Receiver.

A first delivery costs no store read: a message can have started before only if the transport
delivered it before, and an aborted kick, or a duplicate of a finished one, is refused by the
run's own ``started`` write (the lifecycle's store checks the record's final status and abort
tombstone in that same write) and then skipped. Only redeliveries (a worker died under the
message, or a crash came between the result write and the acknowledgement) read the record
first: duplicates are dropped without reaching the Receiver, and the runs that never finished
are counted.
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
from taskiq.labels import LabelType
from taskiq.message import BrokerMessage, TaskiqMessage

from taskiq_kit.labels import KICKED_AT, RETRIES, label_float, read_timing
from taskiq_kit.results.lifecycle import REQUEUE_LABEL, attempt_of
from taskiq_kit.results.record import TaskRecord, TaskStatus
from taskiq_kit.validation import check_message, shown, usable_task_id

if TYPE_CHECKING:
    from taskiq_kit.results.lifecycle import TaskLifecycle

logger = logging.getLogger("taskiq_kit.delivery")

#: Label taskiq's ``Context.requeue()`` increments; a requeued message must run again.
_REQUEUE = REQUEUE_LABEL
#: Label of a message flow control sent again after starts that died: ``"<attempt> <run>"``,
#: the number of the run it was to be (see :meth:`DeliveryGate._carried_run`).
RUN_LABEL = "kit_run"
#: With a shared store the record counts runs; the transport's delivery count is then only a
#: backstop, past this many times ``max_attempts``.
BACKSTOP_FACTOR = 4


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
        attempt: how many times the transport has delivered this message, this time included,
            as counted by the server (never a header a publisher could set); 1 when unknown.
            Only a backstop: the task record counts the runs that matter (see
            :class:`DeliveryGate`).
        ack_later: settles the message as done, possibly a few milliseconds later, batched with
            others (``None``: the transport has no such thing). Used only for acks asked for
            after the task's result was saved; an ack asked for earlier (``ack_type``
            ``when_received`` / ``when_executed``) must not be delayed, since a crash in
            between would run the task again.
        defect: why the transport could not make a message of what it received (e.g. a Redis
            stream entry without a ``data`` field); such a delivery is dead-lettered as is.

    """

    data: bytes
    ack: Callable[[], Awaitable[None] | None]
    dead_letter: Callable[[str], Awaitable[None]]
    attempt: int = 1
    ack_later: Callable[[], Awaitable[None] | None] | None = None
    defect: str | None = None


class _Drop(NamedTuple):
    """A message settled without running.

    ``record_as``: the status to record, if any; ``poison``: why it goes to the dead letters.
    """

    record_as: TaskStatus | None = None
    poison: str | None = None
    kicked_at: float | None = None


class HandoffFormatter(ProxyFormatter):
    """taskiq's formatter, plus a hand-off: the Receiver gets the message the gate already parsed.

    The gate must parse each body to check it; without this, taskiq's Receiver would parse the
    same bytes again. Entries are keyed by the very bytes object the gate admitted, and bounded.
    """

    _MAX_WAITING = 10_000

    def __init__(self, broker: AsyncBroker) -> None:
        super().__init__(broker)
        self._parsed: dict[int, tuple[bytes, TaskiqMessage]] = {}
        self._calls: dict[str, tuple[list[Any], dict[str, Any]]] = {}

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        """Taskiq's ``dumps``, keeping the call's arguments for the kick's record (:meth:`call_of`)."""
        calls = self._calls
        if len(calls) >= self._MAX_WAITING:
            calls.clear()
        calls[message.task_id] = (message.args, message.kwargs)
        return super().dumps(message)

    def call_of(self, task_id: str) -> tuple[list[Any], dict[str, Any]] | None:
        """The ``(args, kwargs)`` of the message of ``task_id`` just dumped (once), if any."""
        return self._calls.pop(task_id, None)

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
    """Admits deliveries to the Receiver, dead-lettering or dropping the ones that must not run.

    A message is dead-lettered, with a reason, when taskiq could not run it (see
    :func:`~taskiq_kit.validation.check_message`), and when its record says it *started*
    ``max_attempts`` times without finishing (it keeps killing its worker). Runs of a message
    that started before without finishing are numbered here for the status middleware, which
    makes them run alone (see :mod:`taskiq_kit.isolation`), so that only a task that kills its
    worker when alone reaches the limit. The transport's delivery count is a backstop only:
    past ``max_attempts`` with a process-local store (which a dying worker takes with it), past
    ``BACKSTOP_FACTOR`` times that otherwise (a dying worker's prefetched messages are counted
    there too). Expired and aborted tasks are dropped, their status recorded.

    Args:
        lifecycle: returns the lifecycle of the broker's result backend.
        parse: turns a message body into a taskiq message (the broker's formatter).
        find_task: the broker's task registry (``None`` for an unknown task).
        max_attempts: starts of one message without finishing before it is dead-lettered.
        hand_off: gives the Receiver the message parsed here, so it does not parse it again.
        process_local: whether the broker's store lives in this process only.
        flow: flow control's admission (:meth:`~taskiq_kit.flow.control.FlowControl.admit`):
            false when the message must not run now (it was re-scheduled, or superseded);
            its delivery is then settled here.

    """

    #: Task ids remembered as "result saved" (and runs numbered) at most; beyond, the memory is
    #: cleared (acks of forgotten ids are then written at once, runs counted as first runs).
    _MAX_SAVED = 10_000

    def __init__(
        self,
        *,
        lifecycle: Callable[[], TaskLifecycle],
        parse: Callable[[bytes], TaskiqMessage],
        find_task: Callable[[str], object | None],
        max_attempts: int,
        hand_off: Callable[[bytes, TaskiqMessage], None] | None = None,
        process_local: Callable[[], bool] = lambda: False,
        flow: Callable[[TaskiqMessage], Awaitable[bool]] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.parse = parse
        self.find_task = find_task
        self.hand_off = hand_off
        self.process_local = process_local
        self.max_attempts = max_attempts
        self.flow = flow
        self._saved: set[str] = set()
        self._runs: dict[str, int] = {}
        #: Redeliveries dropped because their kick had finished (or was aborted) already.
        self.duplicates_dropped = 0

    def result_saved(self, task_id: str) -> None:
        """Note that the result of the admitted run of ``task_id`` is saved (its ack may wait)."""
        if len(self._saved) >= self._MAX_SAVED:
            self._saved.clear()
        self._saved.add(task_id)

    def run_number(self, task_id: str) -> int:
        """The number of the run of ``task_id`` about to start (1 unless earlier ones died)."""
        return self._runs.pop(task_id, 1) if self._runs else 1

    def _settle(self, delivery: Delivery, task_id: str) -> Awaitable[None] | None:
        """The Receiver's ack: batched when the result is saved, else written at once."""
        saved = self._saved
        if delivery.ack_later is not None and task_id in saved:
            saved.discard(task_id)
            return delivery.ack_later()
        return delivery.ack()

    async def admit(self, delivery: Delivery) -> AckableMessage | None:
        """Return the message for the Receiver, or ``None`` when it was settled here.

        Never raises (but for a cancellation): an error here would end the worker's loop.
        """
        try:
            return await self._admit(delivery)
        except Exception as exc:
            logger.exception("The delivery gate failed on a message; dead-lettering it.")
            try:
                await delivery.dead_letter(f"delivery gate error: {type(exc).__name__}")
            except Exception:
                logger.exception("Cannot dead-letter the message; it is left unsettled.")
            return None

    async def _admit(self, delivery: Delivery) -> AckableMessage | None:
        if delivery.defect is not None:
            await self._dead_letter(delivery, delivery.defect, None)
            return None
        message, problem = check_message(delivery.data, parse=self.parse, find_task=self.find_task)
        if message is None or problem is not None:
            await self._dead_letter(delivery, problem or "unparseable message", None, message)
            return None
        drop = await self._verdict(message, delivery.attempt)
        if drop is None and not await self._flow_admits(message):
            drop = _Drop()  # re-scheduled by flow control, or superseded: settled below
        if drop is None:
            if self.hand_off is not None:
                self.hand_off(delivery.data, message)
            if delivery.ack_later is None:
                return AckableMessage(data=delivery.data, ack=delivery.ack)
            self._saved.discard(message.task_id)  # only a save after this admission counts
            ack = functools.partial(self._settle, delivery, message.task_id)
            return AckableMessage(data=delivery.data, ack=ack)
        if drop.poison is not None:
            await self._dead_letter(delivery, drop.poison, message.task_id, message)
            return None
        if drop.record_as is not None:
            await self._record(message, drop)
        settled = delivery.ack()
        if settled is not None:
            await settled
        return None

    async def _flow_admits(self, message: TaskiqMessage) -> bool:
        """Whether flow control lets ``message`` run now (when not, it was sent again or ended)."""
        if self.flow is None:
            return True
        # A run numbered here that flow control sends again (a new message, its transport
        # count back at 1) carries its number, so that it is counted when it comes back.
        run = self._runs.get(message.task_id)
        if run is not None:
            message.labels[RUN_LABEL] = f"{attempt_of(message.labels)} {run}"
            types = message.labels_types = message.labels_types or {}
            types[RUN_LABEL] = LabelType.STR.value
        if await self.flow(message):
            if run is not None:
                message.labels.pop(RUN_LABEL, None)
                types.pop(RUN_LABEL, None)
            return True
        self._runs.pop(message.task_id, None)  # numbered again when it comes back
        return False

    async def _verdict(self, message: TaskiqMessage, attempt: int) -> _Drop | None:
        """Why a valid message must not run, or ``None`` to run it (its run numbered)."""
        if read_timing(message.labels).expired(time.time()):
            logger.info(
                "Task %s (%s) expired before it ran; dropped.", message.task_id, message.task_name
            )
            return _Drop(TaskStatus.EXPIRED)
        limit = self.max_attempts * (1 if self.process_local() else BACKSTOP_FACTOR)
        if attempt > limit:
            return _Drop(
                poison=f"delivered {attempt} times without completing (limit {limit}); "
                "it may be crashing its worker"
            )
        if attempt <= 1:
            carried = self._carried_run(message)
            if carried is not None:  # sent again by flow control after starts that died
                self._number(message.task_id, carried)
            return None  # never delivered before: no run of it started; its start write checks
        record = await self._read_record(message.task_id)
        return None if record is None else self._judge(message, record)

    def _judge(self, message: TaskiqMessage, record: TaskRecord) -> _Drop | None:
        """What the record says of a message: drop it, dead-letter it, or run it (numbered)."""
        if _already_completed(record, message):
            logger.info("Task %s already completed this kick; duplicate dropped.", message.task_id)
            self.duplicates_dropped += 1
            return _Drop()  # its record already tells the outcome
        if record.abort_requested_at is not None:
            logger.info(
                "Task %s (%s) was aborted before it ran; dropped.",
                message.task_id,
                message.task_name,
            )
            return _Drop(TaskStatus.ABORTED, kicked_at=record.kicked_at)
        if record.status is TaskStatus.STARTED:
            started = max(record.runs, 1)  # started, never finished: its worker died
            if started >= self.max_attempts:
                return _Drop(
                    poison=f"started {started} times without finishing "
                    f"(limit {self.max_attempts}); it may be crashing its worker"
                )
            self._number(message.task_id, started + 1)
        return None

    def _number(self, task_id: str, run: int) -> None:
        if len(self._runs) >= self._MAX_SAVED:
            self._runs.clear()
        self._runs[task_id] = run

    @staticmethod
    def _carried_run(message: TaskiqMessage) -> int | None:
        """The run number a message sent again by flow control carries (taken off it).

        Only for the attempt it was numbered in (a retry kicked from it starts afresh).
        """
        text = message.labels.pop(RUN_LABEL, None)
        if message.labels_types is not None:
            message.labels_types.pop(RUN_LABEL, None)
        if not isinstance(text, str):
            return None
        attempt, _, run = text.partition(" ")
        if attempt != str(attempt_of(message.labels)) or not run.isdigit():
            return None
        return int(run)

    async def _read_record(self, task_id: str) -> TaskRecord | None:
        """The task's record, waiting out a store outage.

        ``None`` when there is none, or it cannot be read (the message then runs, unchecked).
        """
        try:
            return await self.lifecycle().record(task_id)
        except Exception as exc:  # noqa: BLE001 - a broken record must not stop the worker
            logger.warning("Cannot read the record of task %s (%s).", task_id, type(exc).__name__)
            return None

    async def _record(self, message: TaskiqMessage, drop: _Drop) -> None:
        lifecycle = self.lifecycle()
        try:
            if drop.record_as is TaskStatus.EXPIRED:
                await lifecycle.expired(message)
            else:
                await lifecycle.aborted(message.task_id, kicked_at=drop.kicked_at)
        except Exception as exc:  # noqa: BLE001 - the drop stands; only the record is missing
            logger.warning(
                "Cannot record the status of task %s (%s).", message.task_id, type(exc).__name__
            )

    async def _dead_letter(
        self,
        delivery: Delivery,
        reason: str,
        task_id: str | None,
        message: TaskiqMessage | None = None,
    ) -> None:
        """Dead-letter the delivery; then, when its body named a usable task id, record it.

        The record (``failure``, see :meth:`TaskLifecycle.dead_lettered`) is written after the
        dead letter is settled: a crash between the two leaves the message safe and the record
        as it was.
        """
        logger.warning(
            "Message%s sent to the dead-letter queue: %s",
            "" if task_id is None else f" of task {shown(task_id)}",
            reason,
        )
        await delivery.dead_letter(reason)
        if message is None or not usable_task_id(message.task_id):
            return
        try:
            await self.lifecycle().dead_lettered(message, reason)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the worker
            logger.warning(
                "Cannot record the dead-lettering of task %s (%s).",
                shown(message.task_id),
                type(exc).__name__,
            )
