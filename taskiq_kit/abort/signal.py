"""Pushing abort requests to every worker process: in-process or Redis pub/sub.

Push is fast but can be missed (a worker reconnecting); the durable tombstone in the task's
status record and the workers' reconciliation poll are the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from taskiq_kit._compat import require
from taskiq_kit.urls import redact

logger = logging.getLogger("taskiq_kit.abort")

AbortListener = Callable[[str], object]


class AbortSignal(ABC):
    """Carries "abort task X" to every process that may be running X."""

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open connections."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close connections and stop listening."""

    @abstractmethod
    async def publish(self, task_id: str) -> None:
        """Tell every listening process that ``task_id`` is aborted."""

    @abstractmethod
    async def listen(self, callback: AbortListener) -> None:
        """Call ``callback(task_id)`` for every abort published from now on, until shutdown.

        Listening again before shutdown (a second ``startup()``) must not open a second
        subscription.
        """


class MemoryAbortSignal(AbortSignal):
    """In-process signal, for ``memory://`` brokers."""

    def __init__(self) -> None:
        self._listeners: list[AbortListener] = []

    async def publish(self, task_id: str) -> None:
        """Call the listeners of this process."""
        for listener in self._listeners:
            listener(task_id)

    async def listen(self, callback: AbortListener) -> None:
        """Register ``callback`` (once, however often it is registered)."""
        if callback not in self._listeners:
            self._listeners.append(callback)

    async def shutdown(self) -> None:
        """Forget the listeners."""
        self._listeners.clear()


class RedisAbortSignal(AbortSignal):
    """Redis pub/sub signal: one channel per app, every worker process of the app subscribed.

    On a Redis Cluster (``redis+cluster://``) the signal uses sharded pub/sub (``SPUBLISH`` /
    ``SSUBSCRIBE``): the channel's slot decides the one node that carries it, instead of every
    message being broadcast to every node of the cluster.

    Redis pub/sub ignores the database number: a channel is shared by every client of the
    server. The channel is therefore named after ``scope`` (what tells this app's tasks apart:
    the brokers pass their key prefix and queue, or their exchange) *and* the database of
    ``url``, so an app on database 10 never stops the task of an app on database 11 that
    happens to have the same id.

    Args:
        url: the Redis server (its database number scopes the channel).
        scope: the app's name on this server; part of the channel name.
        reconnect_delay: first wait before re-subscribing after a lost connection (doubles to 5 s).
    """

    def __init__(
        self, url: str, *, scope: str = "taskiq-kit", reconnect_delay: float = 0.2
    ) -> None:
        self._redis_module = require("redis.asyncio", extra="redis", feature="Redis abort signals")
        from taskiq_kit.redis.keys import abort_channel  # noqa: PLC0415 - the redis extra is optional

        self.url = url
        self.scope = scope
        self.channel = abort_channel(scope, db=_database(url))
        self.reconnect_delay = reconnect_delay
        self._client: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._callback: AbortListener | None = None
        self._subscribed = asyncio.Event()
        #: Whether the channel is a sharded one (a Redis Cluster).
        self._sharded = False

    def __repr__(self) -> str:
        return f"RedisAbortSignal({redact(self.url)!r}, channel={self.channel!r})"

    async def startup(self) -> None:
        """Connect the publishing client (idempotent)."""
        if self._client is None:
            from taskiq_kit.redis.connect import is_cluster, make_client  # noqa: PLC0415 - extra

            client = make_client(self.url)
            self._sharded = is_cluster(client)
            if self._sharded:
                await client.initialize()  # learn the slots: the sharded subscription needs them
            self._client = client

    async def shutdown(self) -> None:
        """Stop listening and close the client (idempotent)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        self._subscribed.clear()
        client, self._client = self._client, None
        if client is not None:
            from taskiq_kit.redis.connect import close_client  # noqa: PLC0415 - extra

            await close_client(client)

    async def publish(self, task_id: str) -> None:
        """PUBLISH the id on the channel."""
        await self.startup()
        if self._sharded:
            await self._client.spublish(self.channel, task_id)
        else:
            await self._client.publish(self.channel, task_id)

    async def listen(self, callback: AbortListener) -> None:
        """Subscribe in the background (re-subscribing after connection loss) and wait until live.

        Listening again while already listening replaces the callback; it never adds a second
        subscription.
        """
        await self.startup()
        self._callback = callback
        if self._listener is not None and not self._listener.done():
            return
        self._subscribed = asyncio.Event()  # of this event loop (a broker may outlive one)
        self._listener = asyncio.create_task(
            self._listen_forever(), name=f"taskiq-kit abort listener ({self.channel})"
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    async def _listen_forever(self) -> None:
        delay = self.reconnect_delay
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    if self._sharded:
                        await pubsub.ssubscribe(self.channel)
                    else:
                        await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    delay = self.reconnect_delay
                    while True:
                        item = await self._next_message(pubsub)
                        callback = self._callback
                        if item and item.get("type") in _MESSAGES and callback is not None:
                            data = item["data"]
                            callback(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any connection trouble: back off and retry
                self._subscribed.clear()
                logger.warning(
                    "Abort signal subscription lost (%s); retrying in %.1f s.", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _next_message(self, pubsub: Any) -> Any:
        """The next message (or ``None`` after a quiet second) of the plain or sharded channel."""
        if self._sharded:
            return await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1.0)
        return await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)


#: Pub/sub message types carrying a published id (plain and sharded channels).
_MESSAGES = ("message", "smessage")


def _database(url: str) -> int:
    """The database number of ``url`` (path or ``?db=``; 0 by default; 0 on a cluster)."""
    from redis.asyncio.connection import parse_url  # noqa: PLC0415 - the redis extra is optional

    from taskiq_kit.redis.connect import topology  # noqa: PLC0415 - the redis extra is optional

    return int(parse_url(topology(url).server_url).get("db") or 0)
