"""Templates and assets of the dashboard: a Jinja2 environment over the package's files."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

#: The dashboard's own files under ``static/`` (nothing else is served).
ASSETS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}

#: Pages run only the dashboard's own script and style: no inline code, no other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(seconds: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC (``-`` when unknown)."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def iso(seconds: float | None) -> str:
    """Unix seconds as ISO-8601 (for ``<time datetime=...>``)."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def duration(seconds: float | None) -> str:
    """A span of seconds for people: ``850 ms``, ``12.3 s``, ``4 min 10 s``, ``2 h 5 min``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def ago(seconds: float | None) -> str:
    """How long ago an instant was (``in ...`` when it is ahead)."""
    if seconds is None:
        return "-"
    delta = time.time() - seconds
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def percent(fraction: float | None) -> int:
    """A progress fraction as a whole percentage (0 when unknown)."""
    return 0 if fraction is None else round(fraction * 100)


class Renderer:
    """Renders the dashboard's pages and serves its assets."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("taskiq_kit.dashboard", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(when=when, iso=iso, duration=duration, ago=ago, percent=percent)
        folder = resources.files("taskiq_kit.dashboard").joinpath("static")
        self.assets = {name: folder.joinpath(name).read_bytes() for name in ASSETS}
        digest = hashlib.sha256(b"".join(self.assets.values())).hexdigest()[:12]
        self.env.globals["asset_version"] = digest

    def page(self, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
        """A whole page, or only its ``live`` block when ``context["partial"]`` is true."""
        template = self.env.get_template(name)
        if context.get("partial") and "live" in template.blocks:
            body = "".join(template.blocks["live"](template.new_context(context)))
        else:
            body = template.render(context)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    def asset(self, name: str) -> Response:
        """One of the dashboard's static files (404 for any other name)."""
        if name not in self.assets:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            self.assets[name],
            media_type=ASSETS[name],
            headers={
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
            },
        )
