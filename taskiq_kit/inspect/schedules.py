"""Schedules as an operator sees them: list with next and last firing, pause, resume, run now.

Works from any process given the :class:`~taskiq_kit.scheduler.KitScheduler` object of the app
(started or not: a dashboard or the CLI does not run a scheduler replica); it reads and changes
the group's state in the scheduler's Redis, which every replica follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskiq_kit.exceptions import NotImplementedYetError

if TYPE_CHECKING:
    from taskiq_kit.inspect.models import ScheduleInfo
    from taskiq_kit.scheduler.scheduler import KitScheduler


async def list_schedules(scheduler: KitScheduler) -> list[ScheduleInfo]:
    """Every schedule of the group (static, task labels, dynamic), with its next and last firing."""
    raise NotImplementedYetError(feature="list_schedules")


async def pause_schedule(scheduler: KitScheduler, schedule_id: str) -> ScheduleInfo:
    """Stop firing ``schedule_id`` (static or dynamic) until it is resumed.

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.

    """
    raise NotImplementedYetError(feature="pause_schedule")


async def resume_schedule(scheduler: KitScheduler, schedule_id: str) -> ScheduleInfo:
    """Fire ``schedule_id`` again.

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.

    """
    raise NotImplementedYetError(feature="resume_schedule")


async def run_schedule_now(scheduler: KitScheduler, schedule_id: str) -> str:
    """Send ``schedule_id``'s task now, once, besides its firings; returns the task id.

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.

    """
    raise NotImplementedYetError(feature="run_schedule_now")
