"""Quickstart: a delayed task and its status, on the embedded ``memory://`` broker.

How to run (nothing else needed):

    python examples/e01_quickstart.py

To kick into a real broker instead, run ``taskiq worker examples.e01_quickstart:broker`` beside
it with the same environment: ``TASKIQ_KIT_BROKER_URL=redis://127.0.0.1:6379/0`` (status and
results live in the same Redis), or ``TASKIQ_KIT_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/``
together with ``TASKIQ_KIT_RESULT_URL=redis://127.0.0.1:6379/0`` (a store both processes reach;
without it the status stays in the worker's memory and this script cannot see it).
"""

from __future__ import annotations

import asyncio
import time

from taskiq_kit import KitSettings, get_status, get_task_record, make_broker

settings = KitSettings()
broker = make_broker(settings.broker_url.get_secret_value())


@broker.task
async def send_reminder(user: str) -> str:
    """Pretend to send a reminder."""
    return f"reminded {user}"


async def main() -> None:
    await broker.startup()
    try:
        started = time.monotonic()
        task = await send_reminder.kicker().with_labels(delay=2).kiq("ada")
        print(f"kicked {task.task_id}: {await get_status(broker, task.task_id)}")

        result = await task.wait_result(timeout=10)
        record = await get_task_record(broker, task.task_id)
        print(
            f"after {time.monotonic() - started:.2f} s: {record.status} -> {result.return_value!r}"
        )
        assert record.due_at is not None
        assert record.started_at is not None
        print(f"started {record.started_at - record.due_at:+.3f} s from its due time")
    finally:
        await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
