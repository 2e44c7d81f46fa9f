"""``tasks_router``: status, result, abort and a progress stream of tasks, over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, params
from fastapi.responses import JSONResponse, Response, StreamingResponse
from taskiq.abc.broker import AsyncBroker

from taskiq_kit.abort import AbortOutcome
from taskiq_kit.exceptions import (
    AnonymousRouterError,
    InvalidTaskIdError,
    ProcessLocalStoreError,
    TaskNotFoundError,
)
from taskiq_kit.fastapi.client import TaskClient
from taskiq_kit.fastapi.deps import task_client_provider
from taskiq_kit.fastapi.models import (
    AbortOut,
    ErrorOut,
    Problem,
    TaskInfo,
    TaskResultOut,
)
from taskiq_kit.fastapi.stream import StreamSettings, progress_events
from taskiq_kit.results.api import TASK_ID_PATTERN
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.codec import error_info
from taskiq_kit.results.record import TaskStatus

TaskId = Annotated[
    str,
    Path(
        pattern=TASK_ID_PATTERN,
        description=(
            "1-200 printable ASCII characters other than '{' and '}', not '.' or '..'; "
            "percent-encoded in the path ('order/1' is 'order%2F1')."
        ),
        examples=["3f2b9c0d6a8e4e0f9d1c2b3a4f5e6d7c", "order/1"],
    ),
]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No task with this id is known."}
}
_CONFIRMED = {AbortOutcome.ABORTED_BEFORE_START, AbortOutcome.ABORTED_WHILE_RUNNING}
#: One event of the progress stream (OpenAPI 3.2 describes SSE streams event by event).
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "status"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "progress: ProgressOut as JSON; status: TaskInfo as JSON.",
        },
    },
    "required": ["event", "data"],
}
_SSE_DOC = (
    "Server-Sent Events: a `progress` event (data: ProgressOut JSON) each time the task "
    "reports, comment lines as heartbeats, then one `status` event (data: TaskInfo JSON) and "
    "the end of the stream. The stream also ends after the router's `max_duration`; the "
    "`status` event then has `is_final: false` and clients may reconnect."
)


logger = logging.getLogger("taskiq_kit.fastapi")


def _problem(
    status_code: int, code: str, detail: str, task_id: str, status: TaskStatus | None = None
) -> JSONResponse:
    body = Problem(code=code, detail=detail, task_id=task_id, status=status)
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


def _not_found(exc: TaskNotFoundError | InvalidTaskIdError, task_id: str) -> JSONResponse:
    if isinstance(exc, InvalidTaskIdError):  # the path pattern normally answers first
        return _problem(422, "invalid_task_id", str(exc), task_id)
    return _problem(404, "task_not_found", str(exc), task_id)


def _tail_is_encoded(request: Request) -> bool:
    """Whether the path's last ``/<word>`` was sent percent-encoded (``%2Fresult``).

    The server decodes ``%2F`` before routing, so ``/tasks/a%2Fresult`` (the status of task
    ``a/result``) reaches the result route of task ``a``; the raw path tells them apart.
    """
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        return False
    path = raw.split(b"?", 1)[0]  # some clients' ASGI transports append the query
    tail = path.rsplit(b"/", 1)[-1].decode("latin-1")
    return "/" in unquote(tail)


def _shared_store_of(broker: AsyncBroker) -> Callable[[], None]:
    """A dependency answering 500 with the reason when ``broker``'s store is out of reach here."""
    reported = False

    def require_shared_store() -> None:
        nonlocal reported
        backend = broker.result_backend
        if not isinstance(backend, KitResultBackend):
            return
        try:
            backend.check_readable()
        except ProcessLocalStoreError as exc:
            if not reported:
                reported = True
                logger.error("The tasks router cannot read task status here: %s", exc)  # noqa: TRY400 - the reason, not a traceback
            raise HTTPException(status_code=500, detail=str(exc)) from exc

    return require_shared_store


def tasks_router(
    broker: AsyncBroker,
    *,
    dependencies: Sequence[params.Depends] | None = None,
    allow_anonymous: bool = False,
    prefix: str = "/tasks",
    tags: Sequence[str | Enum] = ("tasks",),
    expose_tracebacks: bool = False,
    abort_wait: float = 5.0,
    stream: StreamSettings | None = None,
) -> APIRouter:
    """An ``APIRouter`` to follow and abort tasks of ``broker``.

    Routes (under ``prefix``):

    * ``GET /tasks/{task_id}``: :class:`TaskInfo` (status, timestamps, attempt, worker, error,
      progress); 404 unknown id.
    * ``GET /tasks/{task_id}/result``: :class:`TaskResultOut` once the task is final; 409 while
      it is not (body: :class:`Problem` with the current status); 404 unknown id, or a
      successful task whose result is no longer stored.
    * ``DELETE /tasks/{task_id}``: abort; 200 when aborted, 202 when a running task was asked
      to stop but had not within ``abort_wait``, 409 when it had already finished or been
      aborted (body: :class:`AbortOut` in every case); 404 unknown id.
    * ``GET /tasks/{task_id}/events``: Server-Sent Events progress stream, ending when the
      task is final.

    Ids go percent-encoded in the path (``order/1`` as ``order%2F1``); one the kit would refuse
    at kick (see :func:`taskiq_kit.results.api.check_task_id`) gets 422. A broker whose store
    lives only in its workers' memory (``amqp://`` without ``result_url``) gets 500 with the
    reason on every route. Failed tasks show the error type and message; tracebacks only with
    ``expose_tracebacks=True`` (they reveal code paths and sometimes data).

    Args:
        broker: a kit broker; the app's lifespan must start it (:func:`kit_lifespan`).
        dependencies: run before every route: put your auth here, e.g.
            ``[Depends(verify_token)]``.
        allow_anonymous: build without ``dependencies`` (routes protected elsewhere, or public).
        prefix: path prefix of the routes.
        tags: OpenAPI tags.
        expose_tracebacks: include worker tracebacks in error bodies.
        abort_wait: default seconds ``DELETE`` waits for a running task to stop (clients may
            choose 0-60 s with ``?wait=``).
        stream: heartbeat, maximum duration and poll interval of the progress stream.

    Returns:
        The router; add it with ``app.include_router(...)``.

    Raises:
        AnonymousRouterError: (a ``ValueError``) when ``dependencies`` is empty and
            ``allow_anonymous`` is not ``True``.

    """
    if not dependencies and allow_anonymous is not True:
        raise AnonymousRouterError
    settings = stream or StreamSettings()
    shared_store = Depends(_shared_store_of(broker))
    router = APIRouter(
        prefix=prefix, tags=list(tags), dependencies=[*(dependencies or ()), shared_store]
    )
    client_dep = Depends(task_client_provider(broker, abort_wait=abort_wait))

    async def task_info(task_id: str, client: TaskClient) -> TaskInfo | JSONResponse:
        try:
            record = await client.record(task_id)
        except (TaskNotFoundError, InvalidTaskIdError) as exc:
            return _not_found(exc, task_id)
        progress = await client.progress(task_id)
        return TaskInfo.build(record, progress, with_traceback=expose_tracebacks)

    async def info_of_longer_id(task_id: str, tail: str, client: TaskClient) -> JSONResponse:
        """``GET /tasks/a%2Fresult``: the status of task ``a/result``, not the result of ``a``."""
        info = await task_info(f"{task_id}/{tail}", client)
        return (
            info if isinstance(info, JSONResponse) else JSONResponse(info.model_dump(mode="json"))
        )

    @router.get(
        "/{task_id:path}/result",
        response_model=TaskResultOut,
        responses={
            404: {"model": Problem, "description": "Unknown id, or the result is gone."},
            409: {"model": Problem, "description": "The task has not finished."},
        },
        summary="Task result",
    )
    async def get_result(
        task_id: TaskId, request: Request, client: TaskClient = client_dep
    ) -> TaskResultOut | JSONResponse:
        """The return value of a finished task, or why it has none."""
        if _tail_is_encoded(request):
            return await info_of_longer_id(task_id, "result", client)
        try:
            record = await client.record(task_id)
        except (TaskNotFoundError, InvalidTaskIdError) as exc:
            return _not_found(exc, task_id)
        if not record.status.is_final:
            detail = f"task {task_id!r} is {record.status.value}: its result is not ready"
            return _problem(409, "task_not_finished", detail, task_id, record.status)
        result = await client.result(task_id)
        if result is None and record.status is TaskStatus.SUCCESS:
            detail = f"the result of task {task_id!r} is no longer stored"
            return _problem(404, "result_unavailable", detail, task_id, record.status)
        error = record.error
        if result is not None and result.error is not None:
            error = error_info(result.error)
        return TaskResultOut(
            task_id=task_id,
            status=record.status,
            value=None if result is None or result.is_err else result.return_value,
            error=None
            if error is None
            else ErrorOut.from_info(error, with_traceback=expose_tracebacks),
            execution_time=None if result is None else result.execution_time,
        )

    @router.get(
        "/{task_id:path}/events",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": _SSE_DOC,
                "content": {"text/event-stream": {"schema": _SSE_EVENT}},
            },
            **_NOT_FOUND,
        },
        summary="Progress stream (SSE)",
    )
    async def events(
        task_id: TaskId, request: Request, client: TaskClient = client_dep
    ) -> Response:
        """Follow a task's progress as Server-Sent Events until it finishes."""
        if _tail_is_encoded(request):
            return await info_of_longer_id(task_id, "events", client)
        try:
            await client.record(task_id)
        except (TaskNotFoundError, InvalidTaskIdError) as exc:
            return _not_found(exc, task_id)
        return StreamingResponse(
            progress_events(client, task_id, settings, with_traceback=expose_tracebacks),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/{task_id:path}", response_model=TaskInfo, responses=_NOT_FOUND, summary="Task status"
    )
    async def get_task(task_id: TaskId, client: TaskClient = client_dep) -> TaskInfo | JSONResponse:
        """Status, timestamps, attempt, worker, error and latest progress of a task."""
        return await task_info(task_id, client)

    @router.delete(
        "/{task_id:path}",
        response_model=AbortOut,
        responses={
            **_NOT_FOUND,
            202: {"model": AbortOut, "description": "Asked to stop; not stopped yet."},
            409: {"model": AbortOut, "description": "Already finished or already aborted."},
        },
        summary="Abort a task",
    )
    async def abort(
        task_id: TaskId,
        client: TaskClient = client_dep,
        wait: Annotated[
            float | None,
            Query(ge=0, le=60, description="Seconds to wait for a running task to stop."),
        ] = None,
    ) -> AbortOut | JSONResponse:
        """Abort a queued, delayed or running task."""
        try:
            outcome = await client.abort(task_id, wait=wait)
            status: TaskStatus | None = await client.status(task_id)
        except (TaskNotFoundError, InvalidTaskIdError) as exc:
            return _not_found(exc, task_id)
        body = AbortOut(task_id=task_id, outcome=outcome, status=status)
        if outcome in _CONFIRMED:
            return body
        code = 202 if outcome is AbortOutcome.ABORT_REQUESTED else 409
        return JSONResponse(body.model_dump(mode="json"), status_code=code)

    return router
