"""A scheduler app for ``taskiq scheduler tests.scheduler.replica_app:scheduler`` subprocesses.

Configured by the environment: ``TASKIQ_KIT_SCHEDULER_*`` (see ``SchedulerSettings``) and
``KIT_TEST_RECORD_KEY``, the Redis list every kick is appended to. The broker is a recorder,
not a transport: what the tests check is that the scheduler fires each instant exactly once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncGenerator

from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.message import BrokerMessage

from taskiq_kit.scheduler import FIRE_AT_LABEL, KitScheduler


class RecordingBroker(AsyncBroker):
    """Appends ``{task_id, fire_at, kicked_at, pid}`` to a Redis list for every kick."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__()
        self.client = Redis.from_url(url)
        self.key = key

    async def kick(self, message: BrokerMessage) -> None:
        record = {
            "task_id": message.task_id,
            "fire_at": float(message.labels[FIRE_AT_LABEL]),
            "kicked_at": time.time(),
            "pid": os.getpid(),
        }
        await self.client.rpush(self.key, json.dumps(record))

    async def listen(self) -> AsyncGenerator[bytes, None]:  # pragma: no cover - never consumed
        raise NotImplementedError
        yield b""

    async def shutdown(self) -> None:
        await super().shutdown()
        await self.client.aclose()


broker = RecordingBroker(
    os.environ.get("TASKIQ_KIT_SCHEDULER_REDIS_URL", "redis://127.0.0.1:6379/0"),
    os.environ.get("KIT_TEST_RECORD_KEY", "kit-test-scheduler-records"),
)
scheduler = KitScheduler.from_settings(broker, prefix="kit-test-scheduler")
