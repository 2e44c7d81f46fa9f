"""Scheduler of the example app: replica-safe, second precision.

How to run (needs Redis for the lease; ``TASKIQ_KIT_SCHEDULER_REDIS_URL``, default
``redis://127.0.0.1:6379/0``), beside the worker and the API of this package:

    taskiq scheduler examples.fastapi_app.scheduler:scheduler

Several replicas may run (``docker/compose.yaml`` runs two): one fires, the others stand by.
"""

from __future__ import annotations

from examples.fastapi_app.tasks import broker
from taskiq_kit.scheduler import CronSchedule, IntervalSchedule, KitScheduler

scheduler = KitScheduler.from_settings(
    broker,
    schedules=[
        IntervalSchedule(id="add-every-30s", task="example.add", interval=30, args=[1, 2]),
        CronSchedule(
            id="nightly-crunch",
            task="example.crunch",
            cron="0 3 * * *",
            tz="UTC",
            kwargs={"steps": 10},
            labels={"expires": 3600},
            missed="run_once",
        ),
    ],
)
