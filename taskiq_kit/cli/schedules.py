"""``schedules list|pause|resume|run``: the schedules of the app's ``KitScheduler``."""

from __future__ import annotations

import click

from taskiq_kit.cli.app import cli, json_option, output, run, target
from taskiq_kit.cli.render import Output, ago, instant
from taskiq_kit.cli.target import started
from taskiq_kit.inspect.models import ScheduleInfo
from taskiq_kit.inspect.schedules import (
    list_schedules,
    pause_schedule,
    resume_schedule,
    run_schedule_now,
)


@cli.group()
def schedules() -> None:
    """Schedules of the app's scheduler (needs --scheduler module:scheduler)."""


def _rows(found: list[ScheduleInfo]) -> list[list[str]]:
    return [
        [
            info.id,
            info.task,
            info.describe,
            "paused" if info.paused else "active",
            "dynamic" if info.dynamic else "static",
            f"{instant(info.next_fire)} ({ago(info.next_fire)})" if info.next_fire else "-",
            instant(info.last_fire),
        ]
        for info in found
    ]


_COLUMNS = ["ID", "TASK", "WHEN", "STATE", "KIND", "NEXT", "LAST"]


@schedules.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List every schedule with its next and last firing."""
    scheduler = target().scheduler()

    async def work(out: Output) -> None:
        found = await list_schedules(scheduler)
        if out.as_json:
            out.data(found)
        else:
            out.table(None, _COLUMNS, _rows(found))

    run(output(as_json), work)


def _changed(name: str, verb: str) -> click.Command:
    change = pause_schedule if verb == "pause" else resume_schedule

    @click.argument("schedule_id")
    @json_option
    def command(schedule_id: str, as_json: bool) -> None:
        scheduler = target().scheduler()

        async def work(out: Output) -> None:
            info = await change(scheduler, schedule_id)
            if out.as_json:
                out.data(info)
            else:
                out.table(None, _COLUMNS, _rows([info]))

        run(output(as_json), work)

    command.__doc__ = (
        "Stop firing SCHEDULE_ID until it is resumed."
        if verb == "pause"
        else "Fire SCHEDULE_ID again after a pause."
    )
    return schedules.command(name)(command)


pause = _changed("pause", "pause")
resume = _changed("resume", "resume")


@schedules.command("run")
@click.argument("schedule_id")
@json_option
def run_command(schedule_id: str, as_json: bool) -> None:
    """Send SCHEDULE_ID's task now, once, besides its firings; prints the task id."""
    scheduler = target().scheduler()

    async def work(out: Output) -> None:
        async with started(scheduler.broker):
            task_id = await run_schedule_now(scheduler, schedule_id)
        if out.as_json:
            out.data({"schedule_id": schedule_id, "task_id": task_id})
        else:
            out.line(task_id)

    run(output(as_json), work)
