"""Queue figures and the dead-letter box of the memory broker (this process, this event loop).

The broker's one queue is counted in the current event loop's state: messages waiting for the
Receiver, tasks running, timers of delayed tasks. Dead letters live in a dict of this process,
in the order they came; a replay hands each back to the broker like a fresh kick.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskiq_kit.exceptions import InvalidCursorError
from taskiq_kit.inspect.dead_letters import (
    Progress,
    body_names,
    decode_cursor,
    encode_cursor,
    prepare_replays,
    preview,
    record_replays,
)
from taskiq_kit.inspect.models import DeadLetter, DeadLetterPage, QueueFigures, ReplayReport

if TYPE_CHECKING:
    from taskiq_kit.base import KitBroker
    from taskiq_kit.inspect.protocols import ProgressCallback
    from taskiq_kit.memory.loops import LoopState

#: The name the memory broker's one queue is shown under.
MEMORY_QUEUE = "memory"


@dataclass(frozen=True, slots=True)
class MemoryDeadLetter:
    """A message the delivery gate dead-lettered, as the memory broker keeps it."""

    data: bytes
    reason: str
    attempt: int
    at: float


class MemoryDeadLetters:
    """The memory broker's dead letters, by id (a counter), oldest first."""

    def __init__(self) -> None:
        self.entries: dict[str, MemoryDeadLetter] = {}
        self._ids = itertools.count(1)

    def add(self, data: bytes, reason: str, attempt: int = 1) -> None:
        """Keep ``data``, dead-lettered for ``reason``."""
        self.entries[str(next(self._ids))] = MemoryDeadLetter(data, reason, attempt, time.time())


class MemoryInspector:
    """The inspect side of one :class:`~taskiq_kit.memory.broker.MemoryBroker`.

    Args:
        broker: the broker (its records are written on replays).
        box: its dead letters.
        loop_state: returns its state in the running event loop, if any.
        requeue: hands a body to it again, due now.

    """

    def __init__(
        self,
        broker: KitBroker,
        box: MemoryDeadLetters,
        loop_state: Callable[[], LoopState | None],
        requeue: Callable[[bytes], None],
    ) -> None:
        self.broker = broker
        self.box = box
        self.loop_state = loop_state
        self.requeue = requeue

    async def queue_figures(self) -> list[QueueFigures]:
        """The figures of the current event loop's queue."""
        state = self.loop_state()
        ready = state.queue.qsize() if state is not None else 0
        delayed = len(state.timers) if state is not None else 0
        # Every message kicked and not settled, less those waiting or delayed: being run.
        busy = state.in_flight - ready - delayed if state is not None else 0
        return [
            QueueFigures(
                name=MEMORY_QUEUE,
                ready=ready,
                in_flight=max(0, busy),
                delayed=delayed,
                dead_lettered=len(self.box.entries),
                consumers=max(1, state.listeners) if state is not None else 1,
            )
        ]

    async def list_dead_letters(self, *, limit: int, cursor: str | None) -> DeadLetterPage:
        """One page of dead letters, oldest first; the cursor holds the last id shown."""
        after = 0
        if cursor is not None:
            position = decode_cursor("memory", cursor)
            if not position.isdigit():
                raise InvalidCursorError(cursor=cursor[:60], reason="not a dead-letter position")
            after = int(position)
        items = [(key, entry) for key, entry in self.box.entries.items() if int(key) > after]
        page = [_dead_letter(key, entry) for key, entry in items[:limit]]
        more = len(items) > limit
        return DeadLetterPage(
            dead_letters=page,
            total=len(self.box.entries),
            next_cursor=encode_cursor("memory", page[-1].id) if more else None,
        )

    def _take(self, ids: Sequence[str] | None) -> tuple[list[tuple[str, bytes]], list[str]]:
        entries = self.box.entries
        wanted = list(entries) if ids is None else list(ids)
        found = [(key, entries[key].data) for key in wanted if key in entries]
        return found, [key for key in wanted if key not in entries]

    async def replay_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Hand dead letters back to the broker as fresh kicks."""
        found, missing = self._take(ids)
        counter = Progress(progress, len(found) + len(missing))
        replays = prepare_replays(self.broker, [data for _, data in found])
        moved = []
        for (key, _), replay in zip(found, replays, strict=True):
            if self.box.entries.pop(key, None) is not None:
                moved.append(replay)
        await record_replays(self.broker, moved)
        for replay in moved:
            self.requeue(replay.body)
        replayed = len(moved)
        counter.add(len(found) + len(missing))
        return ReplayReport(replayed=replayed, missing=missing)

    async def delete_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Forget dead letters (``None``: all of them)."""
        found, missing = self._take(ids)
        for key, _ in found:
            del self.box.entries[key]
        Progress(progress, len(found) + len(missing)).add(len(found) + len(missing))
        return ReplayReport(replayed=len(found), missing=missing)


def _dead_letter(key: str, entry: MemoryDeadLetter) -> DeadLetter:
    names = body_names(entry.data)
    return DeadLetter(
        id=key,
        task_id=names.task_id,
        task_name=names.task_name,
        queue=MEMORY_QUEUE,
        reason=entry.reason,
        attempts=entry.attempt,
        dead_lettered_at=entry.at,
        preview=preview(entry.data),
    )
