"""What a store receives from the lifecycle: typed record writes, and the rule for applying them.

Every store (memory, Redis, PostgreSQL) applies a batch of :class:`RecordWrite` atomically per
task, by the same rule (:func:`applies`, written again in Lua and SQL by the Redis and
PostgreSQL stores): a record never leaves a final status for the same kick, an aborted kick never
starts or retries, and a kick replaces the record of an older kick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from taskiq_kit.results.record import FINAL_VALUES

if TYPE_CHECKING:
    from taskiq.result import TaskiqResult

    from taskiq_kit.results.record import TaskRecord

#: A kick (``pending``, ``scheduled``, ``retrying``): replaces the record, if it is a newer kick
#: or a later attempt of the same kick.
KICK = "kick"
#: A run starting (``started``).
RUN = "run"
#: A run sending itself again (taskiq's ``Context.requeue()``): back to ``pending`` for the same
#: kick and attempt, unless the record is final or the kick was aborted.
REQUEUE = "requeue"
#: A final status (``success``, ``failure``, ``aborted``, ``expired``), with the result.
FINAL = "final"
#: A field without a status change (the abort request); never creates a record.
MARK = "mark"


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One change to one task's record, as a lifecycle transition made it.

    Attributes:
        task_id: the task.
        kind: :data:`KICK`, :data:`RUN`, :data:`REQUEUE`, :data:`FINAL` or :data:`MARK`.
        fields: the :class:`~taskiq_kit.results.record.TaskRecord` attributes it sets (the
            status, as its plain string, included), with JSON-ready values; ``kicked_at`` and
            ``attempt`` excepted, which the store sets from the two below.
        kicked_at: the kick it belongs to (``None``: the record's current kick); stored as the
            record's ``kicked_at`` when set.
        attempt: the run of that kick it belongs to (``None``: the record's current one); stored
            as the record's ``attempt`` when set.
        due_at: the task's due time, which makes the record live longer (delayed kicks).
        result: the encoded result, stored with a final status in the same atomic write.

    """

    task_id: str
    kind: str
    fields: dict[str, object]
    kicked_at: float | None = None
    attempt: int | None = None
    due_at: float | None = None
    result: bytes | None = None

    def record_fields(self) -> dict[str, object]:
        """:attr:`fields` with the write's ``kicked_at`` and ``attempt``, when set."""
        fields = self.fields
        if self.kicked_at is None and self.attempt is None:
            return fields
        fields = dict(fields)
        if self.kicked_at is not None:
            fields["kicked_at"] = self.kicked_at
        if self.attempt is not None:
            fields["attempt"] = self.attempt
        return fields

    @property
    def status(self) -> str | None:
        """The status it sets, if any."""
        status = self.fields.get("status")
        return status if isinstance(status, str) else None


class WriteOutcome(NamedTuple):
    """What a store did with one write.

    Attributes:
        applied: whether the write changed the record.
        status: the record's status after the write (``None``: there is no record).
        abort_requested: whether the record carries an abort request of its kick.

    """

    applied: bool
    status: str | None
    abort_requested: bool


def applies(write: RecordWrite, current: Mapping[str, object] | None) -> bool:
    """Whether ``write`` may change the record whose fields are ``current`` (``None``: none).

    * A write of an older kick than the record's is refused.
    * :data:`KICK` applies to no record, a newer kick, or a later attempt of the same kick that
      was not aborted.
    * The end (:data:`FINAL`) of an earlier attempt than the record's is refused: a retry
      middleware kicked the next attempt before the earlier one stored its result, and the
      record is the retry's (see :func:`result_only` for the result itself).
    * Over a final status, only a newer kick or a later attempt applies (a final status never
      goes back to ``started``, and the first final status of a run wins).
    * :data:`RUN` and :data:`REQUEUE` are refused once the kick was aborted.
    * :data:`MARK` never creates a record.
    """
    if current is None or current.get("status") is None:
        return write.kind != MARK
    record_kick = _number(current.get("kicked_at"))
    record_attempt = _number(current.get("attempt")) or 0
    aborted = current.get("abort_requested_at") is not None
    kick = write.kicked_at
    if kick is not None and record_kick is not None and kick < record_kick:
        return False
    newer_kick = kick is not None and (record_kick is None or kick > record_kick)
    same_kick = kick is None or kick == record_kick
    newer = newer_kick or (
        same_kick and write.attempt is not None and write.attempt > record_attempt
    )
    if write.kind == KICK:
        return newer and (newer_kick or not aborted)
    if write.kind == FINAL and _earlier_attempt(write, same_kick, record_attempt):
        return False
    if current.get("status") in FINAL_VALUES and not newer:
        return False
    return not (write.kind in (RUN, REQUEUE) and aborted and not newer_kick)


def _earlier_attempt(write: RecordWrite, same_kick: bool, record_attempt: float) -> bool:
    return same_kick and write.attempt is not None and write.attempt < record_attempt


def result_only(write: RecordWrite, current: Mapping[str, object] | None) -> bool:
    """Whether a refused ``write`` still stores its result (not its status).

    The end of an earlier attempt whose retry has not finished: a retry middleware that keeps
    the failure as the result (``no_result_on_retry=False``) stores it, as taskiq does, while
    the record stays the retry's (``retrying`` or ``started``, not ``failure``).
    """
    if write.kind != FINAL or write.result is None or current is None:
        return False
    if current.get("status") is None or current.get("status") in FINAL_VALUES:
        return False
    kick, record_kick = write.kicked_at, _number(current.get("kicked_at"))
    same_kick = kick is None or kick == record_kick
    return _earlier_attempt(write, same_kick, _number(current.get("attempt")) or 0)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class RecordStore(Protocol):
    """What the lifecycle needs from a result backend."""

    #: Whether writes are worth batching (a network round trip each); ``False`` for memory.
    batches_writes: bool

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """Apply ``writes`` in order, each atomically by the rule of :func:`applies`."""

    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, or ``None``."""

    def encode_result(self, result: TaskiqResult[object]) -> bytes:
        """Encode ``result`` with the store's codec (a failure when it cannot be encoded)."""
