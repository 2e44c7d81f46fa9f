"""What the exit status of ``taskiq-kit`` means, and which error gives which."""

from __future__ import annotations

import enum

from taskiq_kit.exceptions import BrokerNotAvailableError, TaskiqKitError


class ExitCode(enum.IntEnum):
    """Exit statuses of ``taskiq-kit`` (documented in docs/cli.md)."""

    #: Done.
    OK = 0
    #: An unexpected error (a bug, or a server answering nonsense): the traceback is printed.
    ERROR = 1
    #: The command line itself is wrong (click's usage errors; a ``--broker`` that cannot be
    #: imported; no broker given at all).
    USAGE = 2
    #: What the command names does not exist: a task id, a dead letter, a queue, a schedule.
    NOT_FOUND = 3
    #: Refused: a malformed id or filter, a destructive command not confirmed, an operation the
    #: broker or its store does not support (e.g. reading a process-local memory store).
    REFUSED = 4
    #: A server (broker, result store, scheduler Redis) could not be reached or refused the
    #: connection.
    UNREACHABLE = 5
    #: ``result``: the task finished without a value (failure, aborted, expired).
    TASK_UNSUCCESSFUL = 6
    #: ``result``: the task has not finished yet.
    NOT_READY = 7
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit status an error of a command maps to."""
    if isinstance(error, BrokerNotAvailableError):
        return ExitCode.UNREACHABLE
    if isinstance(error, (ConnectionError, TimeoutError)) or _is_redis_outage(error):
        return ExitCode.UNREACHABLE
    if isinstance(error, TaskiqKitError):
        if isinstance(error, LookupError):
            return ExitCode.NOT_FOUND
        if isinstance(error, (ValueError, TypeError, RuntimeError, NotImplementedError)):
            return ExitCode.REFUSED
    return ExitCode.ERROR


def _is_redis_outage(error: BaseException) -> bool:
    """A redis-py connection or timeout error (the scheduler's own Redis client raises them)."""
    return any(
        kind.__module__.startswith("redis.")
        and kind.__name__ in ("ConnectionError", "TimeoutError")
        for kind in type(error).__mro__
    )
