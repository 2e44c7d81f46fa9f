"""Task status and result backends."""

from taskiq_kit.results.api import get_status, get_task_record
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.status import ErrorInfo, StatusMiddleware, TaskRecord, TaskStatus

__all__ = [
    "ErrorInfo",
    "KitResultBackend",
    "StatusMiddleware",
    "TaskRecord",
    "TaskStatus",
    "get_status",
    "get_task_record",
]
