"""Progress notifications over PostgreSQL LISTEN/NOTIFY: one listening connection per process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from taskiq_kit.results.backend import ChangeWaiter
from taskiq_kit.results.watch import WatchHub

logger = logging.getLogger("taskiq_kit.results")


class PostgresNotifier:
    """Listens on the backend's channel (payload: a task id) and wakes that task's watchers.

    The connection is opened with the first watcher and kept until :meth:`close`. Notifications
    only shorten the wait: if listening fails, watchers poll.
    """

    def __init__(self, url: str, channel: str) -> None:
        self.url = url
        self.channel = channel
        self.hub = WatchHub()
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def watch(self, task_id: str) -> AsyncIterator[ChangeWaiter]:
        """Wake-ups for ``task_id`` while the block runs."""
        waiter, _ = self.hub.add(task_id)
        try:
            await self._listen()
            yield waiter
        finally:
            self.hub.remove(task_id, waiter)

    async def _listen(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            try:
                conn = await asyncpg.connect(self.url)
            except (asyncpg.PostgresError, OSError):
                logger.debug("Progress notifications unavailable; polling.", exc_info=True)
                return
            try:
                await conn.add_listener(self.channel, self._on_notify)
            except (asyncpg.PostgresError, OSError):
                logger.debug("Progress notifications unavailable; polling.", exc_info=True)
                await conn.close()
                return
            self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: object, /) -> None:
        self.hub.notify(str(payload))

    async def close(self) -> None:
        """Close the listening connection."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                await conn.close()
