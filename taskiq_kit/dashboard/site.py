"""What every page and action of one dashboard shares: its broker, options, and page framing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from taskiq_kit.dashboard import csrf
from taskiq_kit.dashboard.render import Renderer
from taskiq_kit.fastapi.client import TaskClient
from taskiq_kit.fastapi.stream import StreamSettings

if TYPE_CHECKING:
    from taskiq.abc.broker import AsyncBroker

    from taskiq_kit.scheduler.scheduler import KitScheduler

#: Cookie carrying the outcome of the last action to the page shown after it.
NOTICE = "taskiq_kit_notice"

NAV = (
    ("overview", "Overview", "/"),
    ("tasks", "Tasks", "/tasks"),
    ("dead-letters", "Dead letters", "/dead-letters"),
    ("schedules", "Schedules", "/schedules"),
    ("workers", "Workers", "/workers"),
)


@dataclass
class Site:
    """One dashboard: the broker it shows, its options, and how it frames pages."""

    broker: AsyncBroker
    scheduler: KitScheduler | None
    client: TaskClient
    renderer: Renderer
    name: str
    title: str
    expose_tracebacks: bool
    page_size: int
    refresh: float
    stream: StreamSettings

    def route(self, page: str) -> str:
        """The name of a route of this dashboard (unique per ``name``)."""
        return f"{self.name}.{page}"

    def base(self, request: Request) -> str:
        """The dashboard's path as the browser sees it (root path and mount prefix included)."""
        return request.url_for(self.route("overview")).path.rstrip("/")

    def page(
        self,
        request: Request,
        template: str,
        active: str,
        context: dict[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        """Render ``template`` in the dashboard's frame, with the session's token and notice."""
        token, new = csrf.session_token(request)
        base = self.base(request)
        notice = request.cookies.get(NOTICE)
        nav = [item for item in NAV if item[0] != "schedules" or self.scheduler is not None]
        response = self.renderer.page(
            template,
            {
                "base": base,
                "title": self.title,
                "nav": nav,
                "active": active,
                "csrf_token": token,
                "csrf_field": csrf.FIELD,
                "notice": unquote(notice)[:500] if notice else None,
                "refresh": self.refresh,
                "partial": request.query_params.get("partial") == "1",
                "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                **context,
            },
            status_code=status_code,
        )
        if new:
            csrf.remember(response, token, base + "/")
        if notice:
            response.delete_cookie(NOTICE, path=base + "/")
        return response

    def notify(self, response: Response, request: Request, text: str) -> None:
        """Show ``text`` on the next page this browser loads."""
        response.set_cookie(
            NOTICE,
            quote(text[:500]),
            path=self.base(request) + "/",
            max_age=60,
            httponly=True,
            samesite="strict",
        )
