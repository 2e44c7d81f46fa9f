"""Task status, progress and result backends.

The Redis and PostgreSQL backends live in :mod:`taskiq_kit.results.redis` and
:mod:`taskiq_kit.results.postgres` (they need the ``redis`` / ``postgres`` extras).
"""

from taskiq_kit.exceptions import (
    InvalidProgressError,
    ResultBackendNotStartedError,
    ResultDecodeError,
    ResultNotSerializableError,
    TaskFailedError,
)
from taskiq_kit.results.api import get_progress, get_status, get_task_record, watch_progress
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.codec import JSONCodec, PickleCodec, ResultCodec
from taskiq_kit.results.lifecycle import TaskLifecycle
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import ErrorInfo, TaskRecord, TaskStatus
from taskiq_kit.results.status import StatusMiddleware
from taskiq_kit.results.tracker import Progress

__all__ = [
    "ErrorInfo",
    "InvalidProgressError",
    "JSONCodec",
    "KitResultBackend",
    "PickleCodec",
    "Progress",
    "ProgressReport",
    "ResultBackendNotStartedError",
    "ResultCodec",
    "ResultDecodeError",
    "ResultNotSerializableError",
    "StatusMiddleware",
    "TaskFailedError",
    "TaskLifecycle",
    "TaskRecord",
    "TaskStatus",
    "get_progress",
    "get_status",
    "get_task_record",
    "watch_progress",
]
