"""The app of the ops tests: ``taskiq worker tests.ops.app:broker``, ``taskiq-kit -b ...``.

Configured from the environment: ``KIT_TEST_NAME`` (queue, key prefix and result prefix, so each
test has its own), ``KIT_TEST_METRICS_PORT`` (worker-N serves its metrics on this port + N), ``KIT_TEST_LATE``
(registers the ``late`` task).
Tasks: ``ok`` returns its argument, ``boom`` raises, ``sleepy`` sleeps (to be aborted).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.observability.metrics import MetricsMiddleware
from taskiq_kit.scheduler import IntervalSchedule, KitScheduler

REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TASKIQ_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class BoomError(RuntimeError):
    """What ``boom`` raises."""


def build(name: str, *, late: bool = False, rabbit: bool = False, **options: Any) -> KitBroker:
    """A broker and store on names of their own (``name``), with the tasks registered.

    Redis broker and store; ``rabbit``: a RabbitMQ broker (exchange and queue ``name``) with
    the Redis store. ``late``: also register ``late`` (the fix of a task the worker did not
    know, deployed).
    """
    options.setdefault("worker_heartbeat", 0.5)  # `taskiq-kit workers` sees work soon
    if rabbit:
        broker = make_broker(
            AMQP_URL,
            result_url=REDIS_URL,
            result_options={"prefix": name},
            exchange=name,
            queue_name=name,
            **options,
        )
    else:
        broker = make_broker(
            REDIS_URL, queue_name=name, key_prefix=name, result_options={"prefix": name}, **options
        )

    @broker.task(task_name="ok")
    async def ok(value: Any = None) -> Any:
        return value

    @broker.task(task_name="boom")
    async def boom() -> None:
        raise BoomError("boom, as asked")

    @broker.task(task_name="sleepy")
    async def sleepy(seconds: float = 60.0) -> None:
        await asyncio.sleep(seconds)

    if late:

        @broker.task(task_name="late")
        async def late_task(value: Any = None) -> Any:
            return {"late": value}

    return broker


NAME = os.environ.get("KIT_TEST_NAME", "kit-test-ops")
broker = build(NAME, late=bool(os.environ.get("KIT_TEST_LATE")))
rabbit_broker = build(NAME, rabbit=True)
_PORT = os.environ.get("KIT_TEST_METRICS_PORT")
if _PORT:
    broker.add_middlewares(MetricsMiddleware(port=int(_PORT), addr="127.0.0.1", queue_cache=0.2))


def build_scheduler(target: KitBroker, name: str) -> KitScheduler:
    """A scheduler group of its own (``name``) with one hourly schedule of ``ok``."""
    hourly = IntervalSchedule(id="hourly-ok", task="ok", args=["tick"], interval=3600)
    return KitScheduler(target, redis_url=REDIS_URL, name=name, prefix=name, schedules=[hourly])


scheduler = build_scheduler(broker, NAME)
