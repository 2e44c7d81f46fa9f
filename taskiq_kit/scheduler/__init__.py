"""A scheduler that runs as several replicas, fires to the second, and reads declarative config.

Run it with taskiq's CLI as usual: ``taskiq scheduler app.scheduler:scheduler``, where::

    scheduler = KitScheduler(broker, redis_url="redis://localhost:6379/0", config="schedules.toml")

Needs the ``redis`` extra (``pip install taskiq-kit[scheduler]`` adds croniter for cron).
"""

from taskiq_kit.scheduler.config import (
    ScheduleConfigError,
    SchedulerSettings,
    load_schedules,
    parse_schedules,
    schedules_from_labels,
)
from taskiq_kit.scheduler.keys import SchedulerKeys
from taskiq_kit.scheduler.models import (
    BaseSchedule,
    CronSchedule,
    IntervalSchedule,
    MissedPolicy,
    OnceSchedule,
    Schedule,
    fire_task_id,
    schedule_adapter,
)
from taskiq_kit.scheduler.runner import FIRE_AT_LABEL, RUN_NOW_LABEL
from taskiq_kit.scheduler.scheduler import KitScheduler
from taskiq_kit.scheduler.store import (
    RedisScheduleStore,
    ScheduleExistsError,
    ScheduleNotFoundError,
)

__all__ = [
    "FIRE_AT_LABEL",
    "RUN_NOW_LABEL",
    "BaseSchedule",
    "CronSchedule",
    "IntervalSchedule",
    "KitScheduler",
    "MissedPolicy",
    "OnceSchedule",
    "RedisScheduleStore",
    "Schedule",
    "ScheduleConfigError",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "SchedulerKeys",
    "SchedulerSettings",
    "fire_task_id",
    "load_schedules",
    "parse_schedules",
    "schedule_adapter",
    "schedules_from_labels",
]
