"""The dashboard's actions (POST): abort, re-run, dead letters, schedules.

Each answers a plain form with a redirect back to the page it came from (the outcome shown there),
and a script (``Accept: application/json``) with ``{"ok", "message", ...}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from taskiq_kit.abort import AbortOutcome
from taskiq_kit.dashboard import csrf
from taskiq_kit.dashboard.site import Site
from taskiq_kit.dashboard.views import can_rerun, rerun
from taskiq_kit.exceptions import (
    DeadLetterNotFoundError,
    TaskiqKitError,
    TaskNotFoundError,
)
from taskiq_kit.inspect.api import (
    delete_dead_letters,
    purge_dead_letters,
    replay_all_dead_letters,
    replay_dead_letters,
)
from taskiq_kit.inspect.schedules import pause_schedule, resume_schedule, run_schedule_now

#: The largest form body an action reads.
MAX_BODY = 256 * 1024

Form = dict[str, list[str]]
#: What an action did: whether it did what was asked, the message to show, data for scripts.
Outcome = tuple[bool, str, dict[str, Any]]


class ActionRefusedError(Exception):
    """An action that cannot be done as asked: its message is shown, with an HTTP status."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


async def read_form(request: Request) -> Form:
    """The URL-encoded form of ``request``, checked against cross-site use.

    Raises:
        CrossSiteRequestError: when the request is not the dashboard's own.
        ActionRefusedError: when the body is too large.

    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ActionRefusedError("form too large", 413)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    csrf.check(request, _first(form, csrf.FIELD))
    return form


def _first(form: Form, name: str) -> str | None:
    values = [value for value in form.get(name, []) if value]
    return values[0] if values else None


def _one(form: Form, name: str) -> str:
    values = [value for value in form.get(name, []) if value]
    if not values:
        raise ActionRefusedError(f"missing {name}")
    return values[0]


def _back(site: Site, request: Request, form: Form, default: str) -> str:
    """Where to send the browser afterwards: the dashboard page it came from, or ``default``."""
    base = site.base(request)
    back = (form.get("back") or [""])[0]
    plain = all(" " < char < "\x7f" and char != "\\" for char in back)
    if plain and back.startswith(base + "/") and not back.startswith("//"):
        return back
    return base + default


def _answer(
    site: Site, request: Request, form: Form, default: str, *, ok: bool, message: str, **data: Any
) -> Response:
    wants_json = "application/json" in request.headers.get("accept", "")
    if wants_json:
        return JSONResponse({"ok": ok, "message": message, **data}, status_code=200 if ok else 409)
    response = RedirectResponse(_back(site, request, form, default), status_code=303)
    site.notify(response, request, message)
    return response


async def _run(
    site: Site, request: Request, action: Callable[[Form], Awaitable[Outcome]], default: str
) -> Response:
    try:
        form = await read_form(request)
    except csrf.CrossSiteRequestError as exc:
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    except ActionRefusedError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status_code)
    try:
        ok, message, data = await action(form)
    except ActionRefusedError as exc:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"ok": False, "message": str(exc)}, status_code=exc.status_code)
        ok, message, data = False, str(exc), {}
    except TaskiqKitError as exc:
        ok, message, data = False, str(exc), {}
    return _answer(site, request, form, default, ok=ok, message=message, **data)


async def abort(site: Site, request: Request) -> Response:
    """Abort a queued, delayed or running task."""

    async def act(form: Form) -> Outcome:
        task_id = _one(form, "task_id")
        try:
            outcome = await site.client.abort(task_id)
        except TaskNotFoundError as exc:
            raise ActionRefusedError(str(exc), 404) from exc
        status = await site.client.status(task_id)
        ok = outcome in {AbortOutcome.ABORTED_BEFORE_START, AbortOutcome.ABORTED_WHILE_RUNNING}
        text = f"task {task_id}: {outcome.value.replace('_', ' ')} (now {status.value})"
        return ok, text, {"task_id": task_id, "outcome": outcome.value, "status": status.value}

    return await _run(site, request, act, "/tasks")


async def rerun_task(site: Site, request: Request) -> Response:
    """Send a task again with the same arguments; goes on to the new task's page."""

    async def act(form: Form) -> Outcome:
        task_id = _one(form, "task_id")
        try:
            record = await site.client.record(task_id)
        except TaskNotFoundError as exc:
            raise ActionRefusedError(str(exc), 404) from exc
        if not can_rerun(record):
            raise ActionRefusedError(
                f"task {task_id}: its store kept no arguments to run it again with"
            )
        new_id = await rerun(site.broker, record)
        form["back"] = [f"{site.base(request)}/task?{urlencode({'id': new_id})}"]
        return True, f"sent {record.task_name} again as {new_id}", {"task_id": new_id}

    return await _run(site, request, act, "/tasks")


async def dead_letter_action(site: Site, request: Request) -> Response:
    """Replay or delete dead letters: the selected ones, one row's, or all."""

    async def act(form: Form) -> Outcome:
        if row := _first(form, "row_replay"):
            op, ids = "replay", [row]
        elif row := _first(form, "row_delete"):
            op, ids = "delete", [row]
        else:
            op, ids = _one(form, "op"), [value for value in form.get("ids", []) if value]
        if op in {"replay", "delete"} and not ids:
            raise ActionRefusedError("no dead letter selected")
        try:
            if op == "replay":
                report = await replay_dead_letters(site.broker, ids)
                return True, f"replayed {report.replayed} dead letter(s)", {}
            if op == "delete":
                report = await delete_dead_letters(site.broker, ids)
                return True, f"deleted {report.replayed} dead letter(s)", {}
        except DeadLetterNotFoundError as exc:
            return False, str(exc), {}
        if op == "replay_all":
            report = await replay_all_dead_letters(site.broker)
            return True, f"replayed {report.replayed} dead letter(s)", {}
        if op == "purge":
            return True, f"deleted {await purge_dead_letters(site.broker)} dead letter(s)", {}
        raise ActionRefusedError(f"unknown operation {op!r}")

    return await _run(site, request, act, "/dead-letters")


async def schedule_action(site: Site, request: Request) -> Response:
    """Pause, resume or run now one schedule."""

    async def act(form: Form) -> Outcome:
        scheduler = site.scheduler
        if scheduler is None:
            raise ActionRefusedError("this dashboard has no scheduler", 404)
        op, schedule_id = _one(form, "op"), _one(form, "id")
        if op == "pause":
            info = await pause_schedule(scheduler, schedule_id)
            return True, f"paused {info.id}", {"paused": info.paused}
        if op == "resume":
            info = await resume_schedule(scheduler, schedule_id)
            return True, f"resumed {info.id}", {"paused": info.paused}
        if op == "run":
            task_id = await run_schedule_now(scheduler, schedule_id)
            return True, f"sent {schedule_id} now as task {task_id}", {"task_id": task_id}
        raise ActionRefusedError(f"unknown operation {op!r}")

    return await _run(site, request, act, "/schedules")
