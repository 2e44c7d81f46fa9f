"""Progress notifications over Redis pub/sub: one shared connection for all watchers of a process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from taskiq_kit.redis.connect import RedisClient
from taskiq_kit.results.backend import ChangeWaiter
from taskiq_kit.results.redis_keys import ResultKeys
from taskiq_kit.results.watch import WatchHub

logger = logging.getLogger("taskiq_kit.results")

#: Seconds a new watcher waits for the server to confirm its subscription.
_CONFIRM_TIMEOUT = 1.0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisNotifier:
    """Subscribes to the event channel of each watched task on one pub/sub connection.

    Notifications only shorten the wait: watchers still re-read every poll interval, so a
    lost connection degrades to polling, never to a hang.
    """

    def __init__(self, redis: RedisClient, keys: ResultKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.hub = WatchHub()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, str] = {}
        self._confirmations: dict[str, asyncio.Event] = {}
        # PubSub connects lazily on its first command: concurrent first calls would each open one.
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def watch(self, task_id: str) -> AsyncIterator[ChangeWaiter]:
        """Wake-ups for ``task_id`` while the block runs."""
        waiter, first = self.hub.add(task_id)
        channel = self.keys.events(task_id)
        try:
            if first:
                await self._subscribe(task_id, channel)
            yield waiter
        finally:
            if self.hub.remove(task_id, waiter):
                await self._unsubscribe(channel)

    async def _subscribe(self, task_id: str, channel: str) -> None:
        self._channels[channel] = task_id
        confirmed = self._confirmations[channel] = asyncio.Event()
        try:
            async with self._lock:
                if self._pubsub is None:
                    self._pubsub = self.redis.pubsub()
                await self._pubsub.subscribe(channel)
                if self._reader is None:
                    self._reader = asyncio.create_task(self._read(self._pubsub))
            # Wait until the server confirms, so nothing published from now on is missed.
            await asyncio.wait_for(confirmed.wait(), _CONFIRM_TIMEOUT)
        except (RedisError, OSError, asyncio.TimeoutError):
            logger.debug("Progress notifications unavailable; polling.", exc_info=True)
        finally:
            self._confirmations.pop(channel, None)

    async def _unsubscribe(self, channel: str) -> None:
        self._channels.pop(channel, None)
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError):
                logger.debug("Progress notification connection failed; retrying.", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            channel = _text(message.get("channel"))
            if message["type"] == "subscribe":
                event = self._confirmations.get(channel)
                if event is not None:
                    event.set()
            elif message["type"] == "message":
                task_id = self._channels.get(channel)
                if task_id is not None:
                    self.hub.notify(task_id)

    async def close(self) -> None:
        """Stop reading and close the pub/sub connection."""
        reader, pubsub = self._reader, self._pubsub
        self._reader = self._pubsub = None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if pubsub is not None:
            async with pubsub:  # its __aexit__ closes it and returns the connection
                pass
