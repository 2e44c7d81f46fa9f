"""A worker module for the long-task tests: ``taskiq worker tests.rabbit.long_app:broker``.

Configured from the environment (``KIT_TEST_*``); every run of a task appends
``<task name> <pid>`` to the file ``KIT_TEST_OUT`` when it starts.
"""

from __future__ import annotations

import asyncio
import os

from taskiq_kit import make_broker

_after = os.environ.get("KIT_TEST_LONG_AFTER", "")
_result_url = os.environ.get("KIT_TEST_RESULT_URL", "redis://127.0.0.1:6379/0")
_name = os.environ.get("KIT_TEST_PREFIX", "kit_test_long")

broker = make_broker(
    os.environ.get("KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    result_url=_result_url,
    result_options={"table": _name} if _result_url.startswith("postgres") else {"prefix": _name},
    exchange=os.environ.get("KIT_TEST_EXCHANGE", "kit-test-long"),
    queue_name=os.environ.get("KIT_TEST_QUEUE", "kit-test-long"),
    queue_type=os.environ.get("KIT_TEST_QUEUE_TYPE", "quorum"),
    delay_mode="ladder",
    long_task_after=float(_after) if _after else None,
    long_task_lease=float(os.environ.get("KIT_TEST_LEASE", "3")),
)


def _started(name: str) -> None:
    line = f"{name} {os.getpid()}\n".encode()
    fd = os.open(os.environ["KIT_TEST_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


@broker.task(task_name="long_sleep", long=True)
async def long_sleep(seconds: float) -> int:
    """A task labelled long: record the start, sleep ``seconds``, return the pid."""
    _started("long_sleep")
    await asyncio.sleep(seconds)
    return os.getpid()


@broker.task(task_name="plain_sleep")
async def plain_sleep(seconds: float) -> int:
    """A task not labelled: record the start, sleep ``seconds``, return the pid."""
    _started("plain_sleep")
    await asyncio.sleep(seconds)
    return os.getpid()
