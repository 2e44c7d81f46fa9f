"""One exception tree for the kit.

Every error the kit raises derives from :class:`TaskiqKitError`, itself a
``taskiq.exceptions.TaskiqError``. Where a builtin or taskiq error has the same
meaning, the subclass inherits it too, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from taskiq.exceptions import SendTaskError, TaskiqError


class TaskiqKitError(TaskiqError):
    """Root of every error raised by taskiq-kit."""

    __template__ = "taskiq-kit error"


class InvalidURLError(TaskiqKitError, ValueError):
    """A broker or result URL is malformed or has an unsupported scheme."""

    __template__ = "{reason} (got {url!r}); accepted schemes: {accepted}"
    url: str
    reason: str
    accepted: str


class InvalidDelayError(TaskiqKitError, ValueError):
    """A ``delay``, ``eta`` or ``expires`` label has a value that cannot be honoured."""

    __template__ = "invalid {label!r} label {value!r}: {reason}"
    label: str
    value: object
    reason: str


class MissingExtraError(TaskiqKitError, ImportError):
    """An optional dependency of the kit is not installed."""

    __template__ = (
        "{feature} needs the {package!r} package: install it with `pip install taskiq-kit[{extra}]`"
    )
    feature: str
    package: str
    extra: str


class TaskNotFoundError(TaskiqKitError, LookupError):
    """No record of this task id exists (never kicked, or its record expired)."""

    __template__ = "no task with id {task_id!r} is known (never kicked, or its record expired)"
    task_id: str


class InvalidTaskIdError(TaskiqKitError, ValueError):
    """A task id is empty, too long or has characters no broker accepts."""

    __template__ = "invalid task id {task_id!r}: {reason}"
    task_id: object
    reason: str


class BrokerNotAvailableError(TaskiqKitError, SendTaskError):
    """The message broker could not be reached in time."""

    __template__ = "cannot reach {target} within {timeout:g} s: {reason}"
    target: str
    timeout: float
    reason: str


class UnroutableTaskError(TaskiqKitError, SendTaskError):
    """The broker accepted no queue for a kicked task (nothing is bound to its routing key)."""

    __template__ = "task {task_name!r} was not routed to any queue: {reason}"
    task_name: str
    reason: str


class NotImplementedYetError(TaskiqKitError, NotImplementedError):
    """A capability that is planned but not built in this version."""

    __template__ = "{feature} is not implemented yet in this version of taskiq-kit"
    feature: str


class NotAKitBrokerError(TaskiqKitError, TypeError):
    """A kit function was given a broker that was not built by the kit."""

    __template__ = (
        "{broker} keeps no task status or abort state: build it with taskiq_kit.make_broker()"
    )
    broker: str


class TaskAbortedError(TaskiqKitError):
    """The task was aborted (``abort_task``) before or while it ran.

    It is the error stored as the result of an aborted task, and what
    :meth:`~taskiq_kit.abort.AbortToken.raise_if_aborted` raises inside one.
    """

    __template__ = "task {task_id!r} was aborted"
    task_id: str
