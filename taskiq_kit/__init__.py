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
    TaskAbortedError,
    TaskiqKitError,
    TaskNotFoundError,
    UnroutableTaskError,
)
from taskiq_kit.factory import make_broker, make_result_backend
from taskiq_kit.labels import timing
from taskiq_kit.memory import MemoryBroker, MemoryResultBackend
from taskiq_kit.results import (
    ErrorInfo,
    KitResultBackend,
    StatusMiddleware,
    TaskRecord,
    TaskStatus,
    get_status,
    get_task_record,
)
from taskiq_kit.settings import KitSettings

__all__ = [
    "AbortOutcome",
    "AbortToken",
    "BrokerNotAvailableError",
    "ErrorInfo",
    "InvalidDelayError",
    "InvalidTaskIdError",
    "InvalidURLError",
    "KitBroker",
    "KitResultBackend",
    "KitSettings",
    "MemoryBroker",
    "MemoryResultBackend",
    "MissingExtraError",
    "StatusMiddleware",
    "TaskAbortedError",
    "TaskNotFoundError",
    "TaskRecord",
    "TaskStatus",
    "TaskiqKitError",
    "UnroutableTaskError",
    "abort_task",
    "get_status",
    "get_task_record",
    "make_broker",
    "make_result_backend",
    "timing",
]
