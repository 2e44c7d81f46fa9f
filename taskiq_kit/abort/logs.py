"""An abort is not an error: taskiq's traceback for an aborted task becomes one INFO line."""

from __future__ import annotations

import logging

from taskiq_kit.exceptions import TaskAbortedError

#: The logger taskiq's Receiver reports a task's exception on (``logger.exception``).
RECEIVER_LOGGER = "taskiq.receiver.receiver"


class AbortLogFilter(logging.Filter):
    """Rewrites a record of a :class:`TaskAbortedError` as one INFO line, ``Task <id> aborted.``.

    taskiq logs every exception a task raises at ERROR with its traceback. An aborted task
    raises :class:`TaskAbortedError` on purpose (so that taskiq stores it as the result), which
    is the outcome someone asked for, not a fault. Every other record passes unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Turn an abort's record into one INFO line; keep every record."""
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TaskAbortedError):
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
            record.msg = "Task %s aborted."
            record.args = (error.task_id,)
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_abort_tracebacks() -> None:
    """Install :class:`AbortLogFilter` on taskiq's receiver logger, once per process."""
    logger = logging.getLogger(RECEIVER_LOGGER)
    if not any(isinstance(existing, AbortLogFilter) for existing in logger.filters):
        logger.addFilter(AbortLogFilter())
