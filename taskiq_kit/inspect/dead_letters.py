"""What every transport's dead-letter box shares: previews, page cursors, and the replay kick.

A replay is a fresh kick of the dead letter's task: its body gets a new ``kit_kicked_at`` (the
replay instant) and loses its retry count, requeue count, delay and expiry, and its task record
is written back to ``pending`` through the lifecycle (``runs`` reset) once the body is sent.
The new kick instant matters: the record of a task that failed or kept killing its worker is
replaced only by a newer kick, and a run whose body carried the old instant would be refused.
A body that is no task message at all (unparseable) is sent back as it is, with no record.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from taskiq.labels import LabelType

from taskiq_kit.delivery import RUN_LABEL
from taskiq_kit.exceptions import InvalidCursorError
from taskiq_kit.flow.long_parts import RESENDS_LABEL
from taskiq_kit.flow.policy import DEBOUNCE_KEY, DEFERRALS, RESERVED
from taskiq_kit.labels import DELAY, DUE_AT, ETA, EXPIRES, EXPIRES_AT, KICKED_AT, RETRIES
from taskiq_kit.results.lifecycle import REQUEUE_LABEL

if TYPE_CHECKING:
    from taskiq.message import TaskiqMessage

    from taskiq_kit.base import KitBroker
    from taskiq_kit.inspect.protocols import ProgressCallback
    from taskiq_kit.results.writes import RecordWrite

logger = logging.getLogger("taskiq_kit.inspect")

#: Characters of a body shown in a listing at most.
PREVIEW_CHARS = 200
#: Dead letters moved per batch (one record round trip and one atomic move each).
REPLAY_BATCH = 100
#: Labels a replay drops: it runs now, as attempt 1, whatever delayed or expired it before; a
#: rate reservation flow control made for an earlier delivery is long used up (the replay
#: reserves again, as a fresh kick does), and its counts of deferrals, runs and long-task
#: re-sends start again. It is no debounced kick either (sent on purpose, it is not dropped as
#: superseded by a kick of its debounce window); its rate and concurrency limits stay.
_DROPPED = (
    *(RETRIES, REQUEUE_LABEL, DELAY, ETA, EXPIRES, EXPIRES_AT, DUE_AT),
    *(RESERVED, DEFERRALS, RUN_LABEL, RESENDS_LABEL, DEBOUNCE_KEY),
)


def preview(data: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The start of ``data`` as text (undecodable bytes replaced), at most ``limit`` characters."""
    text = data[: limit * 4].decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BodyNames(NamedTuple):
    """The task id and name a body claims, where it can be read as a taskiq JSON message."""

    task_id: str | None
    task_name: str | None


def body_names(data: bytes) -> BodyNames:
    """Read the task id and name of a JSON task body (``None`` for what cannot be read)."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return BodyNames(None, None)
    if not isinstance(parsed, dict):
        return BodyNames(None, None)
    task_id, task_name = parsed.get("task_id"), parsed.get("task_name")
    return BodyNames(
        task_id if isinstance(task_id, str) else None,
        task_name if isinstance(task_name, str) else None,
    )


def encode_cursor(kind: str, position: str) -> str:
    """An opaque cursor of a ``kind`` dead-letter listing continuing after ``position``."""
    raw = json.dumps(["dead-letters", kind, position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    """The position held by ``cursor``.

    Raises:
        InvalidCursorError: when it was not made by a ``kind`` dead-letter listing.

    """
    if not isinstance(cursor, str):
        raise InvalidCursorError(cursor=repr(cursor)[:60], reason="a cursor is a str")
    shown = cursor if len(cursor) <= 60 else f"{cursor[:60]}..."
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, made_by, position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(
            cursor=shown, reason="not a cursor of a dead-letter listing"
        ) from exc
    if tag != "dead-letters" or made_by != kind or not isinstance(position, str):
        raise InvalidCursorError(
            cursor=shown, reason=f"not a cursor of a {kind} dead-letter listing"
        )
    return position


def _fresh(broker: KitBroker, data: bytes, now: float) -> TaskiqMessage | None:
    try:
        message = broker.formatter.loads(data)
    except Exception:  # noqa: BLE001 - an unreadable body is sent back as it is
        return None
    for name in _DROPPED:
        message.labels.pop(name, None)
        if message.labels_types is not None:
            message.labels_types.pop(name, None)
    # As the timing middleware writes it: taskiq's wire string, typed as a float.
    message.labels[KICKED_AT] = repr(now)
    if message.labels_types is None:
        message.labels_types = {}
    message.labels_types[KICKED_AT] = LabelType.FLOAT.value
    return message


class Replay(NamedTuple):
    """A dead letter's replay: the body to send, and the record write of its fresh kick."""

    body: bytes
    write: RecordWrite | None


def prepare_replays(broker: KitBroker, bodies: Sequence[bytes]) -> list[Replay]:
    """The replays of dead letters whose bodies are ``bodies`` (a fresh kick each, now)."""
    now = time.time()
    replays: list[Replay] = []
    lifecycle = broker.lifecycle
    for data in bodies:
        message = _fresh(broker, data, now)
        if message is None:
            replays.append(Replay(data, None))
            continue
        sent = broker.formatter.dumps(message)
        # The fresh kick replaces the record whole: its queue and arguments go on it again.
        write = lifecycle.kick_write(
            sent,
            now=now,
            queue=broker.queue_of(message.labels),
            call=(message.args, message.kwargs),
        )
        write.fields["runs"] = 0
        replays.append(Replay(sent.message, write))
    return replays


async def record_replays(broker: KitBroker, replays: Sequence[Replay]) -> None:
    """Write the records of ``replays`` back to ``pending``, in one round trip.

    Called once the replays are sent. The record follows the message rather than leading it:
    the body already carries its newer kick, which the worker's ``started`` write makes the
    record's (a crash before this write leaves an outdated status, never a task that cannot
    run), while two replays racing for one dead letter write only the winner's kick. A failed
    write is logged, not raised: the messages are sent.
    """
    lifecycle = broker.lifecycle
    writes = [lifecycle.write(replay.write) for replay in replays if replay.write is not None]
    for outcome in await asyncio.gather(*writes, return_exceptions=True):
        if isinstance(outcome, BaseException):
            logger.warning("Cannot write a replayed task's record (%s).", type(outcome).__name__)
        elif not outcome.applied:
            logger.info("A replayed task's record kept its status (%s).", outcome.status)


class Progress:
    """Reports ``(done, total)`` to an optional callback."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def add(self, count: int) -> None:
        """Count ``count`` more done and report."""
        self.done += count
        if self.callback is not None:
            self.callback(self.done, max(self.total, self.done))
