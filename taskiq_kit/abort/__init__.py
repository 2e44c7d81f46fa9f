"""Abort / cancel of queued, delayed and running tasks."""

from taskiq_kit.abort.api import AbortOutcome, abort_task
from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.abort.running import INTERRUPTIBLE
from taskiq_kit.abort.signal import AbortSignal, MemoryAbortSignal, RedisAbortSignal
from taskiq_kit.abort.token import AbortToken

__all__ = [
    "INTERRUPTIBLE",
    "AbortMiddleware",
    "AbortOutcome",
    "AbortSignal",
    "AbortToken",
    "MemoryAbortSignal",
    "RedisAbortSignal",
    "abort_task",
]
