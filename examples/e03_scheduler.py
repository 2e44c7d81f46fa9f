"""Scheduler: declarative schedules, several replicas, second precision.

How to run (needs Redis at 127.0.0.1:6379, or set ``TASKIQ_KIT_SCHEDULER_REDIS_URL``):

    taskiq scheduler examples.e03_scheduler:scheduler

Start it in two or three terminals: one replica leads and fires, the others stand by; stop the
leader (Ctrl-C or SIGTERM hand over within a second, ``kill -9`` within the 5 s lease) and
another takes over.

With the default ``memory://`` broker the tasks run inside the scheduler process; set
``TASKIQ_KIT_BROKER_URL=redis://...`` (or ``amqp://...``) and run
``taskiq worker examples.e03_scheduler:broker`` to run them on workers instead.

Dynamic schedules, while the scheduler runs:

    python examples/e03_scheduler.py add      # every 3 s, stored in Redis
    python examples/e03_scheduler.py list
    python examples/e03_scheduler.py pause    # / resume / delete
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timezone
from pathlib import Path

from taskiq_kit import KitSettings, make_broker
from taskiq_kit.scheduler import (
    IntervalSchedule,
    KitScheduler,
    RedisScheduleStore,
    SchedulerSettings,
)

broker = make_broker(KitSettings().broker_url.get_secret_value())


@broker.task(task_name="examples.heartbeat")
async def heartbeat(source: str) -> None:
    """Print the time, to watch the precision."""
    print(f"{datetime.now(timezone.utc):%H:%M:%S.%f} heartbeat ({source})")


# taskiq's schedule labels keep working, and are replica-safe too.
@broker.task(
    task_name="examples.hourly_report",
    schedule=[{"cron": "0 * * * *", "schedule_id": "hourly-report"}],
)
async def hourly_report() -> None:
    """Runs at the top of every hour."""
    print("hourly report")


scheduler = KitScheduler.from_settings(broker, config=Path(__file__).with_name("schedules.toml"))


async def manage(command: str) -> None:
    settings = SchedulerSettings()
    store = RedisScheduleStore.from_url(settings.redis_url.get_secret_value(), name=settings.name)
    try:
        if command == "add":
            schedule = IntervalSchedule(
                id="dynamic", task="examples.heartbeat", interval=3, kwargs={"source": "dynamic"}
            )
            await store.add(schedule, replace=True)
        elif command in ("pause", "resume"):
            await getattr(store, command)("dynamic")
        elif command == "delete":
            await store.delete("dynamic")
        for schedule in await store.list():
            state = "on" if schedule.enabled else "paused"
            print(f"{schedule.id}: {schedule.describe()} -> {schedule.task} [{state}]")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(manage(sys.argv[1] if len(sys.argv) > 1 else "list"))
