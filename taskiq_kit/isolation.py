"""Suspects run alone: how a worker blames only the task that kills it.

A message whose earlier run started and never finished (its record still says ``started``) is a
*suspect*: its worker died under it, or under a task running beside it. A suspect waits until
nothing else runs in its process, then runs alone; nothing else starts until it ends. If the
process dies now, the suspect was the only task running, so only its count of unfinished runs
grows, and the innocent tasks that happened to run beside a crashing one once are never blamed
again. Waiting is bounded (``max_wait`` without any run ending), so a task that waits for another task
to run cannot dead-lock the worker: past that time the waiting run starts beside the others. Suspects waiting
for another suspect to end take their turns without that bound.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

logger = logging.getLogger("taskiq_kit.delivery")

#: Seconds a run waits for its turn (a suspect for the others to end, the others for a suspect).
MAX_WAIT = 10.0


class _Ticket:
    """One run admitted by :class:`RunIsolation`; released once."""

    __slots__ = ("alone", "released")

    def __init__(self, *, alone: bool) -> None:
        self.alone = alone
        self.released = False


#: The ticket of the run the current task belongs to (set in ``pre_execute``).
_CURRENT: contextvars.ContextVar[_Ticket | None] = contextvars.ContextVar(
    "taskiq_kit_isolation", default=None
)


class RunIsolation:
    """Lets ordinary runs share the process and suspects run alone, in one worker process.

    Args:
        max_wait: the longest a run waits for its turn, in seconds.

    """

    def __init__(self, *, max_wait: float = MAX_WAIT) -> None:
        self.max_wait = max_wait
        self.running = 0
        self._alone = False
        self._suspects_waiting = 0
        self._changed: asyncio.Event | None = None

    def try_enter(self) -> bool:
        """Admit an ordinary run at once when no suspect runs or waits (the common case)."""
        if self._alone or self._suspects_waiting:
            return False
        self._admit(alone=False)
        return True

    async def enter(self, *, suspect: bool) -> None:
        """Wait for this run's turn (at most ``max_wait`` seconds), then admit it."""
        deadline = time.monotonic() + self.max_wait
        if suspect:
            self._suspects_waiting += 1
        try:
            while not self._may_enter(suspect=suspect):
                if suspect and self._alone:
                    # Suspects take turns: waiting for another to end does not use the time up.
                    deadline = max(deadline, time.monotonic() + self.max_wait)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.info(
                        "A run waited %.0f s for its turn; it starts beside the others.",
                        self.max_wait,
                    )
                    self._admit(alone=False)
                    return
                if self._changed is None:
                    self._changed = asyncio.Event()
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    continue
                # A run ended or a suspect took its turn: the others make progress, so the wait
                # is not stuck. The bound is on a wait with no progress at all.
                deadline = time.monotonic() + self.max_wait
        finally:
            if suspect:
                self._suspects_waiting -= 1
                self._notify()  # ordinary runs may be waiting for no suspect to wait
        self._admit(alone=suspect)

    def _may_enter(self, *, suspect: bool) -> bool:
        if self._alone:
            return False
        return self.running == 0 if suspect else self._suspects_waiting == 0

    def _admit(self, *, alone: bool) -> None:
        self.running += 1
        self._alone = self._alone or alone
        ticket = _Ticket(alone=alone)
        _CURRENT.set(ticket)
        task = asyncio.current_task()
        if task is not None:
            # A safety net: a run whose post_execute never comes (an error in between) still
            # ends when taskiq's callback for it does.
            task.add_done_callback(lambda _: self._release(ticket))

    def leave(self) -> None:
        """End the run of the current task (from ``post_execute``)."""
        ticket = _CURRENT.get()
        if ticket is not None:
            _CURRENT.set(None)
            self._release(ticket)

    def _release(self, ticket: _Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self.running -= 1
        if ticket.alone:
            self._alone = False
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
