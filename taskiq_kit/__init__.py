"""taskiq-kit: what Celery had and TaskIQ lacks.

Plugin-less delayed delivery, task status and safe result backends, dead-lettering, abort, and
FastAPI wiring, for TaskIQ on RabbitMQ and Redis. Start with :func:`make_broker`.
"""

from taskiq_kit.abort import AbortOutcome, AbortToken, abort_task
from taskiq_kit.base import KitBroker
from taskiq_kit.exceptions import (
    BrokerNotAvailableError,
    InvalidDelayError,
    InvalidTaskIdError,
    InvalidURLError,
    MissingExtraError,
    ProcessLocalStoreError,
    TaskAbortedError,
    TaskExpiredError,
    TaskiqKitError,
    TaskNotFoundError,
    UnroutableTaskError,
)
from taskiq_kit.factory import make_broker, make_result_backend
from taskiq_kit.inspect import count_tasks, list_tasks
from taskiq_kit.labels import timing
from taskiq_kit.memory import MemoryBroker, MemoryResultBackend
from taskiq_kit.results import (
    ErrorInfo,
    InvalidProgressError,
    KitResultBackend,
    Progress,
    ProgressReport,
    ResultDecodeError,
    ResultNotSerializableError,
    StatusMiddleware,
    TaskFailedError,
    TaskRecord,
    TaskStatus,
    get_progress,
    get_status,
    get_task_record,
    watch_progress,
)
from taskiq_kit.settings import KitSettings

__all__ = [
    "AbortOutcome",
    "AbortToken",
    "BrokerNotAvailableError",
    "ErrorInfo",
    "InvalidDelayError",
    "InvalidProgressError",
    "InvalidTaskIdError",
    "InvalidURLError",
    "KitBroker",
    "KitResultBackend",
    "KitSettings",
    "MemoryBroker",
    "MemoryResultBackend",
    "MissingExtraError",
    "ProcessLocalStoreError",
    "Progress",
    "ProgressReport",
    "ResultDecodeError",
    "ResultNotSerializableError",
    "StatusMiddleware",
    "TaskAbortedError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskiqKitError",
    "UnroutableTaskError",
    "abort_task",
    "count_tasks",
    "get_progress",
    "get_status",
    "get_task_record",
    "list_tasks",
    "make_broker",
    "make_result_backend",
    "timing",
    "watch_progress",
]
