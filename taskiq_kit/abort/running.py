"""The tasks running in this process, and how each one is stopped when it is aborted."""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

logger = logging.getLogger("taskiq_kit.abort")

#: Label that opts a sync task into interruption of its thread when aborted.
INTERRUPTIBLE = "interruptible"


class ThreadInterrupt(BaseException):
    """Raised asynchronously inside the thread of an aborted, interruptible sync task."""


#: Guards each run's thread id and wake-up event against an abort from the event loop's thread.
#: One lock for all runs: it is held for a few instructions, and creating a lock per run costs
#: more than the rare contention.
_GUARD = threading.Lock()


class RunContext:
    """One execution of a task in this process: what an abort needs to stop it.

    Attributes:
        aborted: whether an abort reached this execution.
        target: the asyncio task to cancel while the task's coroutine runs in it (a child task
            on Python 3.10, else the task running it).
        thread_id: the thread running the task's sync function, while it runs.
        skipped: whether the run must not happen at all (its record is final already: a
            duplicate delivery, or an aborted kick); the task's function is then not called.

    """

    __slots__ = (
        "_event",
        "aborted",
        "interruptible",
        "skipped",
        "target",
        "task_id",
        "thread_id",
    )

    def __init__(self, task_id: str, *, interruptible: bool = False) -> None:
        self.task_id = task_id
        self.interruptible = interruptible
        self.aborted = False
        self.skipped = False
        self.target: asyncio.Task[Any] | None = None
        self.thread_id: int | None = None
        self._event: threading.Event | None = None  # made only for a sync task that waits

    def abort(self) -> None:
        """Stop this execution: cancel its coroutine, or interrupt its thread if it opted in.

        Only the first abort acts: a second one (the reconciliation poll finding the tombstone
        while the task still runs its cleanup) must not cancel that cleanup.
        """
        with _GUARD:
            if self.aborted:
                return
            self.aborted = True
            if self._event is not None:
                self._event.set()
            if self.thread_id is not None and self.interruptible:
                _interrupt(self.thread_id)
        target = self.target
        if target is not None and not target.done():
            target.cancel()

    def wait(self, timeout: float | None) -> bool:
        """Block the calling thread until aborted or ``timeout`` seconds pass; True if aborted."""
        with _GUARD:
            if self.aborted:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def enter_thread(self) -> None:
        """Note that the calling thread now runs this execution's sync function."""
        with _GUARD:
            self.thread_id = threading.get_ident()

    def leave_thread(self) -> None:
        """Note that this execution's sync function has returned (or raised)."""
        with _GUARD:
            self.thread_id = None


def _interrupt(thread_id: int) -> None:
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(ThreadInterrupt)
    )
    if done > 1:  # pragma: no cover - CPython's documented "undo" dance
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


#: The execution the current coroutine (or worker thread) belongs to; set before the task runs.
CURRENT: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "taskiq_kit_run", default=None
)


class RunningTasks:
    """Registry of executions in this process, plus ids recently aborted (for races with start-up).

    Args:
        remember: seconds an abort signal is remembered for a task not (yet) running here.
    """

    def __init__(self, remember: float = 600.0) -> None:
        self.remember = remember
        self._running: dict[str, RunContext] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()

    def begin(self, task_id: str, *, interruptible: bool) -> RunContext:
        """Register an execution of ``task_id`` about to start."""
        run = RunContext(task_id=task_id, interruptible=interruptible)
        if self._recent and self.was_aborted(task_id):
            run.aborted = True
        self._running[task_id] = run
        return run

    def end(self, run: RunContext) -> None:
        """Forget an execution that has finished."""
        if self._running.get(run.task_id) is run:
            del self._running[run.task_id]

    def running_ids(self) -> list[str]:
        """Ids of the tasks running here now."""
        return list(self._running)

    def abort(self, task_id: str) -> bool:
        """Stop ``task_id`` if it runs here; remember the abort either way. True if it was running."""
        now = time.monotonic()
        self._recent[task_id] = now
        self._recent.move_to_end(task_id)
        while self._recent:
            oldest, at = next(iter(self._recent.items()))
            if now - at <= self.remember and len(self._recent) <= 100_000:
                break
            del self._recent[oldest]
        run = self._running.get(task_id)
        if run is None:
            return False
        logger.info("Aborting running task %s.", task_id)
        run.abort()
        return True

    def was_aborted(self, task_id: str) -> bool:
        """Whether an abort signal for ``task_id`` reached this process recently."""
        at = self._recent.get(task_id)
        return at is not None and time.monotonic() - at <= self.remember
