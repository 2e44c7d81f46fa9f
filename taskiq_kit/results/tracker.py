"""The ``Progress`` dependency: how a task reports its progress."""

from __future__ import annotations

from taskiq import Context, TaskiqDepends

from taskiq_kit.results.api import kit_backend
from taskiq_kit.results.progress import ProgressReport, make_report


class Progress:
    """Reports the progress of the running task; readers poll or watch it.

    Declare it as a task parameter::

        @broker.task
        async def resize(path: str, progress: Progress = TaskiqDepends()) -> str:
            await progress.report(0.4, message="resizing", meta={"step": 2})
            ...

    Read it with :func:`~taskiq_kit.results.api.get_progress` or
    :func:`~taskiq_kit.results.api.watch_progress`.
    """

    def __init__(self, context: Context = TaskiqDepends()) -> None:
        self.context = context

    @property
    def task_id(self) -> str:
        """The id of the running task."""
        return self.context.message.task_id

    async def report(
        self, fraction: float, *, message: str | None = None, meta: object = None
    ) -> ProgressReport:
        """Store the task's progress (replacing the previous report) and notify watchers.

        Args:
            fraction: done so far, from 0 to 1.
            message: what the task is doing, for people.
            meta: JSON-compatible data for programs (models, dataclasses, datetimes are fine).

        Returns:
            The stored report.

        Raises:
            InvalidProgressError: (a ``ValueError``) when ``fraction`` is outside 0..1 or not a
                number, ``message`` is not a string, or ``meta`` is not JSON-serialisable.

        """
        report = make_report(fraction, message=message, meta=meta)
        await kit_backend(self.context.broker).write_progress(self.task_id, report)
        return report

    async def current(self) -> ProgressReport | None:
        """The latest report of this task, if any."""
        return await kit_backend(self.context.broker).read_progress(self.task_id)
