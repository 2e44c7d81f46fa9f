"""``AbortToken``: a task dependency to notice an abort cooperatively."""

from __future__ import annotations

from taskiq_kit.abort.running import CURRENT
from taskiq_kit.exceptions import TaskAbortedError


class AbortToken:
    """Tells a running task whether it has been aborted.

    Async tasks are cancelled by an abort anyway; sync tasks (run in threads) cannot be stopped
    from outside unless they opt in to interruption, so long sync loops should check the token::

        @broker.task
        def crunch(rows: list[int], token: AbortToken = TaskiqDepends()) -> int:
            total = 0
            for row in rows:
                token.raise_if_aborted()
                total += row
            return total
    """

    def __init__(self) -> None:
        self._run = CURRENT.get()

    @property
    def aborted(self) -> bool:
        """Whether this task has been aborted."""
        return self._run is not None and self._run.aborted

    def raise_if_aborted(self) -> None:
        """Raise :class:`~taskiq_kit.exceptions.TaskAbortedError` if this task has been aborted."""
        if self._run is not None and self._run.aborted:
            raise TaskAbortedError(task_id=self._run.task_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Block (in a sync task) until aborted or ``timeout`` seconds pass; True if aborted."""
        return self._run is not None and self._run.wait(timeout)
