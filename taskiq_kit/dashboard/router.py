"""``dashboard_router``: the dashboard as an ``APIRouter`` to include in a FastAPI app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request, params
from starlette.responses import Response, StreamingResponse
from taskiq.abc.broker import AsyncBroker

from taskiq_kit.dashboard import actions, pages
from taskiq_kit.dashboard.live import task_events
from taskiq_kit.dashboard.render import Renderer
from taskiq_kit.dashboard.site import Site
from taskiq_kit.exceptions import AnonymousRouterError
from taskiq_kit.fastapi.client import TaskClient
from taskiq_kit.fastapi.router import _shared_store_of
from taskiq_kit.fastapi.stream import StreamSettings

if TYPE_CHECKING:
    from taskiq_kit.scheduler.scheduler import KitScheduler

Handler = Callable[[Site, Request], Awaitable[Response]]


def dashboard_router(
    broker: AsyncBroker,
    *,
    scheduler: KitScheduler | None = None,
    dependencies: Sequence[params.Depends] | None = None,
    allow_anonymous: bool = False,
    prefix: str = "/dashboard",
    title: str = "taskiq-kit",
    expose_tracebacks: bool = False,
    page_size: int = 50,
    abort_wait: float = 5.0,
    refresh: float = 5.0,
    stream: StreamSettings | None = None,
    name: str = "taskiq_kit_dashboard",
) -> APIRouter:
    """An ``APIRouter`` serving the dashboard of ``broker`` under ``prefix``.

    Pages: overview (queue figures, live workers, the last hour's tasks per status), tasks
    (filters, pages, live progress, abort), one task (timeline, arguments, result or error,
    abort, run again), dead letters (replay, delete), schedules (pause, resume, run now) and
    workers. Its data comes from :mod:`taskiq_kit.inspect`; its templates, style and script ship
    in the package (no build step, nothing loaded from elsewhere). Links follow the app's
    ``root_path`` and the prefix, so it works behind a proxy's sub-path.

    Actions are POSTs taking a per-session token and refused from other sites (see
    :mod:`taskiq_kit.dashboard.csrf`). Tracebacks of failed tasks show only with
    ``expose_tracebacks=True``, as in :func:`~taskiq_kit.fastapi.tasks_router`.

    Args:
        broker: a kit broker; the app's lifespan must start it (:func:`kit_lifespan`).
        scheduler: the app's :class:`~taskiq_kit.scheduler.KitScheduler`, for the schedules
            page (it need not run in this process).
        dependencies: run before every page, asset and action: your auth, e.g.
            ``[Depends(verify_admin)]``. A browser sends HTTP Basic credentials and cookies by
            itself, bearer tokens it does not.
        allow_anonymous: build without ``dependencies`` (protected elsewhere).
        prefix: path of the dashboard in the app.
        title: shown in the header and the window title.
        expose_tracebacks: show worker tracebacks on failed tasks.
        page_size: rows per page of tasks and dead letters.
        abort_wait: seconds an abort waits for a running task to stop.
        refresh: seconds between live refreshes of the overview, schedules and workers.
        stream: timing of the live progress stream.
        name: prefix of the route names (give each dashboard of one app its own).

    Returns:
        The router; add it with ``app.include_router(...)``.

    Raises:
        AnonymousRouterError: (a ``ValueError``) when ``dependencies`` is empty and
            ``allow_anonymous`` is not ``True``.

    """
    if not dependencies and allow_anonymous is not True:
        raise AnonymousRouterError
    if not 1 <= page_size <= 1000:
        raise ValueError(f"page_size must be 1 to 1000, got {page_size!r}")
    if not refresh > 0:
        raise ValueError(f"refresh must be positive seconds, got {refresh!r}")
    site = Site(
        broker=broker,
        scheduler=scheduler,
        client=TaskClient(broker, abort_wait=abort_wait),
        renderer=Renderer(),
        name=name,
        title=title,
        expose_tracebacks=expose_tracebacks,
        page_size=page_size,
        refresh=refresh,
        stream=stream or StreamSettings(),
    )
    router = APIRouter(
        prefix=prefix,
        dependencies=[*(dependencies or ()), Depends(_shared_store_of(broker))],
        include_in_schema=False,
    )

    def add(path: str, page: str, handler: Handler, method: str = "GET") -> None:
        async def endpoint(request: Request) -> Response:
            return await handler(site, request)

        endpoint.__name__ = f"dashboard_{page}"
        router.add_api_route(path, endpoint, methods=[method], name=site.route(page))

    add("/", "overview", pages.overview)
    add("/tasks", "tasks", pages.tasks)
    add("/task", "task", pages.task)
    add("/dead-letters", "dead_letters", pages.dead_letters)
    add("/schedules", "schedules", pages.schedules)
    add("/workers", "workers", pages.workers)
    add("/actions/abort", "abort", actions.abort, "POST")
    add("/actions/rerun", "rerun", actions.rerun_task, "POST")
    add("/actions/dead-letters", "dead_letter_action", actions.dead_letter_action, "POST")
    add("/actions/schedules", "schedule_action", actions.schedule_action, "POST")

    @router.get("/live", name=site.route("live"))
    async def live(task_id: list[str] = Query(default=[], alias="id")) -> Response:
        return StreamingResponse(
            task_events(site.client, task_id, site.stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/static/{asset}", name=site.route("static"))
    async def static(asset: str) -> Response:
        return site.renderer.asset(asset)

    return router
