"""The dashboard's pages (GET): overview, tasks, task detail, dead letters, schedules, workers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse

from taskiq_kit.dashboard.chart import ORDER, Chart, last_hour
from taskiq_kit.dashboard.site import Site
from taskiq_kit.dashboard.views import (
    ABORTABLE,
    arguments,
    can_rerun,
    parse_utc_input,
    timeline,
)
from taskiq_kit.exceptions import (
    InvalidCursorError,
    InvalidQueryError,
    TaskiqKitError,
    TaskNotFoundError,
)
from taskiq_kit.fastapi.models import ErrorOut
from taskiq_kit.inspect.api import (
    MAX_LIMIT,
    count_tasks,
    list_dead_letters,
    list_tasks,
    list_workers,
    queue_figures,
)
from taskiq_kit.inspect.models import DeadLetterPage, TaskPage, WorkerInfo
from taskiq_kit.inspect.schedules import list_schedules
from taskiq_kit.results.record import TaskStatus

logger = logging.getLogger("taskiq_kit.dashboard")

#: Starts the reason of a section left empty because the page's query was wrong.
BAD_QUERY = "Cannot list: "
#: Longest text shown of a task's arguments or return value.
SHOWN_CHARS = 20_000


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "\n... (cut)"


async def _attempt(coro: Any) -> tuple[Any, str | None]:
    """Run a query of the inspect API; a kit error becomes the reason the section is empty."""
    try:
        return await coro, None
    except (InvalidQueryError, InvalidCursorError) as exc:
        return None, f"{BAD_QUERY}{exc}"
    except TaskiqKitError as exc:
        return None, str(exc)
    except Exception as exc:  # a server out of reach empties one section, not the page
        logger.warning("The dashboard could not read a section", exc_info=True)
        return None, f"{type(exc).__name__}: {exc}"


def _silent_after(site: Site) -> float:
    """Seconds without a heartbeat after which a worker has probably stopped (dropped later)."""
    return 1.5 * float(getattr(site.broker, "worker_heartbeat", 10.0))


async def overview(site: Site, request: Request) -> HTMLResponse:
    """Queue figures, live workers and the last hour's tasks per status."""
    (queues, queues_error), (workers, workers_error), (chart, chart_error) = await asyncio.gather(
        _attempt(queue_figures(site.broker)),
        _attempt(list_workers(site.broker)),
        _attempt(last_hour(site.broker)),
    )
    return site.page(
        request,
        "overview.html",
        "overview",
        {
            "queues": queues or [],
            "queues_error": queues_error,
            "workers": workers or [],
            "workers_error": workers_error,
            "chart": chart or Chart(),
            "chart_error": chart_error,
            "order": [status.value for status in ORDER],
            "silent_after": _silent_after(site),
            "now": time.time(),
        },
    )


def _filters(
    site: Site, request: Request
) -> tuple[dict[str, Any], dict[str, Any], int, str | None]:
    """The tasks page's filters, as the inspect API takes them and as the form shows them.

    Returns the query, the form's values, the page size, and what is wrong with them (or ``None``).
    """
    params = request.query_params
    statuses = [value for value in params.getlist("status") if value]
    form: dict[str, Any] = {
        name: params.get(name, "").strip()
        for name in ("task_name", "queue", "since", "until", "search", "limit")
    }
    form["status"] = statuses
    query: dict[str, Any] = {
        "status": statuses or None,
        "task_name": form["task_name"] or None,
        "queue": form["queue"] or None,
        "search": form["search"] or None,
    }
    limit = site.page_size
    try:
        query["since"] = parse_utc_input(form["since"])
        query["until"] = parse_utc_input(form["until"])
    except ValueError:
        return query, form, limit, f"{BAD_QUERY}since and until must be dates and times (UTC)"
    if form["limit"]:
        if not form["limit"].isdigit() or not 1 <= int(form["limit"]) <= MAX_LIMIT:
            return query, form, limit, f"{BAD_QUERY}rows per page must be 1 to {MAX_LIMIT}"
        limit = int(form["limit"])
    return query, form, limit, None


async def tasks(site: Site, request: Request) -> HTMLResponse:
    """The tasks table, filtered and paged."""
    query, form, limit, error = _filters(site, request)
    cursor = request.query_params.get("cursor") or None
    page: TaskPage | None = None
    counts: dict[TaskStatus, int] | None = None
    if error is None:
        (page, error), (counts, _) = await asyncio.gather(
            _attempt(list_tasks(site.broker, **query, limit=limit, cursor=cursor)),
            _attempt(count_tasks(site.broker, **{k: v for k, v in query.items() if k != "status"})),
        )

    records = page.tasks if page is not None else []
    progress = await asyncio.gather(
        *(
            site.client.progress(record.task_id)
            if record.status in ABORTABLE
            else asyncio.sleep(0, None)
            for record in records
        )
    )
    next_params = [
        (key, value)
        for key, value in request.query_params.multi_items()
        if key not in {"cursor", "partial"}
    ]
    return site.page(
        request,
        "tasks.html",
        "tasks",
        {
            "records": list(zip(records, progress, strict=True)),
            "next_cursor": page.next_cursor if page is not None else None,
            "next_params": next_params,
            "paged": cursor is not None,
            "error": error,
            "form": form,
            "statuses": [status.value for status in TaskStatus],
            "counts": {status.value: count for status, count in (counts or {}).items()},
            "task_names": sorted(site.broker.get_all_tasks()),
            "limits": sorted({10, 25, 50, 100, 200, limit, site.page_size}),
            "limit": limit,
            "abortable": {status.value for status in ABORTABLE},
            "now": time.time(),
        },
        status_code=400 if error and error.startswith(BAD_QUERY) else 200,
    )


async def task(site: Site, request: Request) -> HTMLResponse:
    """One task: timeline, arguments, result or error, attempts, worker, live progress."""
    task_id = request.query_params.get("id", "")
    try:
        record = await site.client.record(task_id)
    except TaskNotFoundError as exc:
        return site.page(request, "missing.html", "tasks", {"reason": str(exc)}, status_code=404)
    except TaskiqKitError as exc:
        return site.page(request, "missing.html", "tasks", {"reason": str(exc)}, status_code=400)
    progress = await site.client.progress(task_id)
    value: str | None = None
    error = record.error
    if record.status.is_final:
        try:
            result = await site.client.result(task_id)
        except (TaskiqKitError, ValidationError):
            result = None
        if result is not None and not result.is_err:
            value = _shown(result.return_value)
    args, kwargs = arguments(record)
    return site.page(
        request,
        "task.html",
        "tasks",
        {
            "record": record,
            "progress": progress,
            "steps": timeline(record),
            "args": args,
            "kwargs": kwargs,
            "args_truncated": bool(getattr(record, "args_truncated", False)),
            "value": value,
            "error": None
            if error is None
            else ErrorOut.from_info(error, with_traceback=site.expose_tracebacks),
            "abortable": record.status in ABORTABLE,
            "rerunnable": can_rerun(record),
            "queue": getattr(record, "queue", None),
            "now": time.time(),
        },
    )


async def dead_letters(site: Site, request: Request) -> HTMLResponse:
    """Dead letters with their reasons, to replay or delete."""
    cursor = request.query_params.get("cursor") or None
    page: DeadLetterPage | None
    page, error = await _attempt(
        list_dead_letters(site.broker, limit=site.page_size, cursor=cursor)
    )
    return site.page(
        request,
        "dead_letters.html",
        "dead-letters",
        {
            "page": page,
            "letters": page.dead_letters if page is not None else [],
            "error": error,
            "paged": cursor is not None,
        },
    )


async def schedules(site: Site, request: Request) -> HTMLResponse:
    """Schedules with their next and last firing."""
    items, error = (
        await _attempt(list_schedules(site.scheduler))
        if site.scheduler is not None
        else (None, "this dashboard was built without a scheduler (pass scheduler=...)")
    )
    return site.page(
        request,
        "schedules.html",
        "schedules",
        {"schedules": items or [], "error": error, "now": time.time()},
    )


async def workers(site: Site, request: Request) -> HTMLResponse:
    """Live worker processes."""
    items: list[WorkerInfo] | None
    items, error = await _attempt(list_workers(site.broker))
    return site.page(
        request,
        "workers.html",
        "workers",
        {
            "workers": items or [],
            "error": error,
            "now": time.time(),
            "silent_after": _silent_after(site),
        },
    )
