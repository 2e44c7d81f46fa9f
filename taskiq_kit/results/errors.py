"""Errors of the result backends (part of the kit's :class:`~taskiq_kit.TaskiqKitError` tree)."""

from __future__ import annotations

from taskiq.exceptions import ResultBackendError

from taskiq_kit.exceptions import TaskiqKitError
from taskiq_kit.results.status import ErrorInfo


class TaskFailedError(TaskiqKitError):
    """A task raised (or its result could not be stored): the worker's exception, as data.

    The reading side never imports or unpickles the worker's exception class: it gets this
    error, carrying the original type name, message and traceback text.

    Attributes:
        error_type: qualified name of the worker's exception type, e.g. ``"KeyError"``.
        error_message: ``str()`` of the worker's exception.
        remote_traceback: the worker's traceback text, if recorded.

    """

    __template__ = "task failed with {error_type}: {error_message}"
    error_type: str
    error_message: str
    remote_traceback: str | None = None

    @classmethod
    def from_info(cls, info: ErrorInfo) -> TaskFailedError:
        """Build the error from its stored description."""
        return cls(
            error_type=info.type, error_message=info.message, remote_traceback=info.traceback
        )

    @property
    def info(self) -> ErrorInfo:
        """The error as :class:`ErrorInfo` (for JSON APIs)."""
        return ErrorInfo(
            type=self.error_type, message=self.error_message, traceback=self.remote_traceback
        )


class ResultNotSerializableError(TaskiqKitError, TypeError):
    """A task's return value cannot be encoded by the backend's serializer.

    The worker stores a failure carrying this error instead of the value, so the outcome is
    never lost.
    """

    __template__ = (
        "return value of type {type_name} is not {serializer}-serialisable ({reason}); "
        "return JSON-compatible data (dict, list, str, numbers, pydantic models, dataclasses, "
        "datetimes)"
    )
    type_name: str
    serializer: str
    reason: str


class ResultDecodeError(TaskiqKitError, ResultBackendError, ValueError):
    """A stored result or progress entry is not valid data for this backend's serializer.

    Raised instead of executing anything: the JSON serializer never unpickles, so a payload
    planted by someone else (or written by a pickle-configured backend) is refused.
    """

    __template__ = (
        "stored {what} of task {task_id!r} cannot be decoded as {serializer}: {reason}; "
        "was it written by another serializer or another program?"
    )
    what: str
    task_id: str
    serializer: str
    reason: str


class ResultBackendNotStartedError(TaskiqKitError, ResultBackendError, RuntimeError):
    """A result backend was used before ``await broker.startup()`` (or after shutdown)."""

    __template__ = "{backend} is not started: call `await broker.startup()` before using it"
    backend: str


class InvalidProgressError(TaskiqKitError, ValueError):
    """A progress report has a value that cannot be stored."""

    __template__ = "invalid progress {field} {value!r}: {reason}"
    field: str
    value: object
    reason: str
