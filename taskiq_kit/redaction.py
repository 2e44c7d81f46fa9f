"""Keeping message bodies and task arguments out of taskiq's own warnings.

taskiq logs the whole body of a message it cannot parse, and the text of an argument it cannot
convert to its annotated type (pydantic's ``input_value=...``), at WARNING, with a traceback.
Task arguments carry personal data and secrets, and logs go to many places. The delivery gate
keeps unparseable messages away from the Receiver; this filter covers what is left: each such
record keeps its place and level but says only what was wrong (sizes, positions, types).
"""

from __future__ import annotations

import logging

from taskiq_kit.validation import shown

#: taskiq's loggers whose warnings may quote a body or an argument.
RECEIVER_LOGGER = "taskiq.receiver.receiver"
PARAMS_LOGGER = "taskiq.receiver.params_parser"

_CANNOT_PARSE = "Cannot parse message: %s. Skipping execution.\n %s"
_NOT_FOUND = 'task "%s" is not found. Maybe you forgot to import it?'
_BAD_ARGUMENT = (
    "Can't parse argument %d for task %s. Reason: %s",
    "Can't parse argument %s for task %s. Reason: %s",
)


def _error_name(value: object) -> str:
    return type(value).__name__ if isinstance(value, BaseException) else "error"


class RedactingFilter(logging.Filter):
    """Rewrites taskiq's warnings that quote a message body or an argument; keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place if it is one of those warnings."""
        if record.levelno < logging.WARNING or not isinstance(record.args, tuple):
            return True
        args = record.args
        if record.msg == _CANNOT_PARSE and len(args) == 2:
            body = args[0]
            size = len(body) if isinstance(body, (bytes, str)) else 0
            record.msg = "Cannot parse a message (%d bytes, %s). Skipping execution."
            record.args = (size, _error_name(args[1]))
        elif record.msg == _NOT_FOUND and len(args) == 1:
            record.args = (shown(args[0], 60),)
        elif record.msg in _BAD_ARGUMENT and len(args) == 3:
            record.msg = "Can't parse argument %s for task %s (%s); it is passed as it came."
            where = args[0] if isinstance(args[0], int) else shown(args[0])
            record.args = (where, shown(args[1], 60), _error_name(args[2]))
        else:
            return True
        record.exc_info = None
        record.exc_text = None
        return True


def redact_taskiq_logs() -> None:
    """Install :class:`RedactingFilter` on taskiq's receiver loggers, once per process."""
    for name in (RECEIVER_LOGGER, PARAMS_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())
