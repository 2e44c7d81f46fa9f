"""A broker module for ``taskiq worker tests.lifecycle.worker_app:broker`` in the lifecycle tests.

Configured from the environment: ``KIT_TEST_CONFIG`` (``redis``: Redis broker and store;
``rabbit``: RabbitMQ with a Redis store; ``rabbit-pg``: RabbitMQ with a PostgreSQL store;
``rabbit-local``: RabbitMQ with the default, process-local
store), ``KIT_TEST_NAME`` (queue, exchange and key prefix), ``KIT_TEST_CRASH_AFTER_SAVE`` (the
process dies right after a result is saved, before its message is acknowledged). The ``once``
task counts its runs in Redis.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from redis.asyncio import Redis
from taskiq import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from taskiq_kit import KitBroker, make_broker

AMQP_URL = os.environ.get("TASKIQ_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TASKIQ_KIT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def build(config: str, name: str, **options: Any) -> KitBroker:
    """The broker of ``config``, its queues and keys named after ``name``."""
    if config == "redis":
        return make_broker(
            REDIS_URL, queue_name=name, key_prefix=name, result_options={"prefix": name}, **options
        )
    if config == "rabbit":
        return make_broker(
            AMQP_URL,
            result_url=REDIS_URL,
            result_options={"prefix": name},
            exchange=name,
            queue_name=name,
            **options,
        )
    if config == "rabbit-pg":
        return make_broker(
            AMQP_URL,
            result_url=POSTGRES_URL,
            result_options={"table": name},
            exchange=name,
            queue_name=name,
            **options,
        )
    if config == "rabbit-local":
        return make_broker(AMQP_URL, exchange=name, queue_name=name, **options)
    raise ValueError(f"unknown KIT_TEST_CONFIG {config!r}")


def runs_key(name: str) -> str:
    return f"kit-test:{{{name}}}:runs"


class CrashAfterSave(TaskiqMiddleware):
    """Kills the worker (and taskiq's process manager, which would start another) once a result
    and its final status are stored, before the message is acknowledged."""

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)


NAME = os.environ.get("KIT_TEST_NAME", "kit-test-lifecycle")
broker = build(os.environ.get("KIT_TEST_CONFIG", "redis"), NAME)
if os.environ.get("KIT_TEST_CRASH_AFTER_SAVE"):
    broker.add_middlewares(CrashAfterSave())


@broker.task(task_name="once")
async def once(tag: str) -> str:
    """Count this run, and return ``tag``."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.incr(runs_key(NAME))
    finally:
        await client.aclose()
    return tag
