"""``/metrics`` over HTTP from a thread of a worker process (the queue gauges read on its loop)."""

from __future__ import annotations

import asyncio
import logging
import socketserver
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from taskiq_kit._compat import require

require("prometheus_client", extra="metrics", feature="taskiq_kit.observability.metrics")

from prometheus_client import CollectorRegistry, make_wsgi_app  # noqa: E402 - after the check

logger = logging.getLogger("taskiq_kit.metrics")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class MetricsServer:
    """``/metrics`` of ``registry`` over HTTP, from a thread of this process.

    ``refresh`` (the queue gauges' read) runs on ``loop``, the worker's event loop, before each
    scrape; a scrape waits for it at most ``refresh_timeout`` seconds, then serves the cache.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        port: int,
        addr: str = "0.0.0.0",  # noqa: S104
        refresh: Callable[[], Awaitable[None]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        refresh_timeout: float = 2.0,
    ) -> None:
        self.registry = registry
        self.port = port
        self.addr = addr
        self.refresh = refresh
        self.loop = loop
        self.refresh_timeout = refresh_timeout
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self) -> Callable[..., Iterable[bytes]]:
        inner = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if self.refresh is not None and self.loop is not None and not self.loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(self._refresh(), self.loop)
                try:
                    future.result(self.refresh_timeout)
                except FutureTimeout:
                    future.cancel()  # serve the cached figures
                except Exception:
                    logger.debug("Refreshing the queue figures failed.", exc_info=True)
            body: Iterable[bytes] = inner(environ, start_response)
            return body

        return app

    async def _refresh(self) -> None:
        if self.refresh is not None:
            await self.refresh()

    def start(self) -> None:
        """Listen and serve in a daemon thread.

        Raises:
            OSError: when the port is taken.

        """
        self._server = make_server(
            self.addr,
            self.port,
            self._app(),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="taskiq-kit-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
