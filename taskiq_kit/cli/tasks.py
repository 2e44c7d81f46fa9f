"""``status``, ``result``, ``abort`` and ``tasks``: one task, or a filtered page of them."""

from __future__ import annotations

import json
from typing import Any

import click
from taskiq.abc.broker import AsyncBroker

from taskiq_kit.abort.api import abort_task
from taskiq_kit.cli.app import cli, json_option, output, run, target
from taskiq_kit.cli.exit_codes import ExitCode
from taskiq_kit.cli.render import Output, ago, instant
from taskiq_kit.cli.target import started
from taskiq_kit.cli.timeparse import INSTANT
from taskiq_kit.inspect.api import count_tasks, list_tasks
from taskiq_kit.results.api import get_task_record
from taskiq_kit.results.record import TaskRecord, TaskStatus

_STATUSES = [status.value for status in TaskStatus]


def _record_rows(record: TaskRecord) -> list[tuple[str, str]]:
    rows = [
        ("task id", record.task_id),
        ("status", record.status.value + (f" ({record.reason})" if record.reason else "")),
        ("task", record.task_name or "-"),
        ("queue", record.queue or "-"),
        ("attempt", str(record.attempt)),
        ("worker", record.worker or "-"),
        ("kicked", f"{instant(record.kicked_at)} ({ago(record.kicked_at)})"),
    ]
    if record.due_at is not None:
        rows.append(("due", f"{instant(record.due_at)} ({ago(record.due_at)})"))
    if record.expires_at is not None:
        rows.append(("expires", f"{instant(record.expires_at)} ({ago(record.expires_at)})"))
    rows += [
        ("started", instant(record.started_at)),
        ("finished", instant(record.finished_at)),
    ]
    if record.abort_requested_at is not None:
        rows.append(("abort asked", instant(record.abort_requested_at)))
    if record.requeues:
        rows.append(("requeues", str(record.requeues)))
    if record.error is not None:
        rows.append(("error", f"{record.error.type}: {record.error.message}"))
    if record.args is not None or record.kwargs is not None:
        cut = " (cut)" if record.args_truncated else ""
        rows.append(("arguments", f"{record.args or '[]'} {record.kwargs or '{}'}{cut}"))
    if record.timeline:
        steps = ", ".join(f"{status.value} {instant(at)[11:]}" for status, at in record.timeline)
        rows.append(("timeline", steps))
    return rows


@cli.command()
@click.argument("task_id")
@json_option
def status(task_id: str, as_json: bool) -> None:
    """Show the record of TASK_ID: status, times, attempt, worker, error."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            record = await get_task_record(broker, task_id)
        if out.as_json:
            out.data(record)
        else:
            out.pairs(_record_rows(record))

    run(output(as_json), work)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


async def _result(broker: AsyncBroker, task_id: str, out: Output) -> ExitCode:
    record = await get_task_record(broker, task_id)
    answer: dict[str, Any] = {"task_id": task_id, "status": record.status.value}
    if not record.status.is_final:
        answer["ready"] = False
        if out.as_json:
            out.data(answer)
        else:
            out.note(f"task {task_id} has not finished: it is {record.status.value}")
        return ExitCode.NOT_READY
    backend = broker.result_backend
    result = await backend.get_result(task_id) if await backend.is_result_ready(task_id) else None
    answer["ready"] = True
    if result is not None and not result.is_err:
        answer["return_value"] = _jsonable(result.return_value)
        answer["execution_time"] = result.execution_time
        if out.as_json:
            out.data(answer)
        else:
            value = answer["return_value"]
            out.line(value if isinstance(value, str) else json.dumps(value, indent=2))
        return ExitCode.OK
    error = record.error
    answer["error"] = error.model_dump(mode="json") if error is not None else None
    if result is not None and result.error is not None and error is None:
        answer["error"] = {"type": type(result.error).__name__, "message": str(result.error)}
    if out.as_json:
        out.data(answer)
    else:
        detail = answer["error"]
        reason = f": {detail['type']}: {detail['message']}" if detail else ""
        out.note(f"task {task_id} finished as {record.status.value}{reason}")
    return ExitCode.TASK_UNSUCCESSFUL


@cli.command()
@click.argument("task_id")
@json_option
def result(task_id: str, as_json: bool) -> None:
    """Print the return value of TASK_ID (exit 6: it failed, aborted or expired; 7: not done)."""
    broker = target().broker()

    async def work(out: Output) -> ExitCode:
        async with started(broker):
            return await _result(broker, task_id, out)

    run(output(as_json), work)


@cli.command()
@click.argument("task_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds to wait for a running task to confirm it stopped.",
)
@json_option
def abort(task_id: str, wait: float, as_json: bool) -> None:
    """Abort TASK_ID: a queued or delayed task never starts, a running one is stopped."""
    broker = target().broker()

    async def work(out: Output) -> None:
        async with started(broker):
            outcome = await abort_task(broker, task_id, wait=wait)
        if out.as_json:
            out.data({"task_id": task_id, "outcome": outcome.value})
        else:
            out.line(f"{task_id}: {outcome.value.replace('_', ' ')}")

    run(output(as_json), work)


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@cli.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    help=f"Only these statuses (repeat, or comma-separate): {', '.join(_STATUSES)}.",
)
@click.option("--name", "task_name", help="Only this task name.")
@click.option("--queue", help="Only tasks sent to this queue.")
@click.option("--since", type=INSTANT, help="Kicked at or after: 15m, 2h, 3d (ago), ISO or unix.")
@click.option("--until", type=INSTANT, help="Kicked before (same forms as --since).")
@click.option("--search", help="A piece of the task id or name.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Tasks per page."
)
@click.option("--cursor", help="The next_cursor of the page before (same filters).")
@click.option("--count", is_flag=True, help="Count per status instead of listing.")
@json_option
def tasks(  # noqa: PLR0917 - click passes one parameter per option
    statuses: tuple[str, ...],
    task_name: str | None,
    queue: str | None,
    since: float | None,
    until: float | None,
    search: str | None,
    limit: int,
    cursor: str | None,
    count: bool,
    as_json: bool,
) -> None:
    """List task records, newest kick first (or --count them per status)."""
    wanted = _split(statuses)
    if count and wanted:
        raise click.UsageError("--count counts every status: drop --status")
    broker = target().broker()
    filters: dict[str, Any] = {
        "task_name": task_name,
        "queue": queue,
        "since": since,
        "until": until,
        "search": search,
    }

    async def work(out: Output) -> None:
        async with started(broker):
            if count:
                counts = await count_tasks(broker, **filters)
                figures = {status.value: number for status, number in counts.items()}
                if out.as_json:
                    out.data({"counts": figures, "total": sum(figures.values())})
                else:
                    rows = [[name, str(number)] for name, number in figures.items()]
                    rows.append(["total", str(sum(figures.values()))])
                    out.table(None, ["STATUS", "TASKS"], rows)
                return
            page = await list_tasks(
                broker, status=wanted or None, limit=limit, cursor=cursor, **filters
            )
        if out.as_json:
            out.data(page)
            return
        rows = [
            [
                record.task_id,
                record.task_name or "-",
                record.queue or "-",
                record.status.value,
                instant(record.kicked_at),
                instant(record.started_at),
                instant(record.finished_at),
                str(record.attempt),
                record.worker or "-",
            ]
            for record in page.tasks
        ]
        columns = [
            "TASK ID", "TASK", "QUEUE", "STATUS", "KICKED", "STARTED", "FINISHED", "TRY", "WORKER"
        ]  # fmt: skip
        out.table(None, columns, rows)
        if page.next_cursor is not None:
            out.note(f"more: --cursor {page.next_cursor}")
        elif not rows:
            out.note("no task matches")

    run(output(as_json), work)
