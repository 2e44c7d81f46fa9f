"""Kicks whose record lives on the broker's own Redis: the record's write and the ``XADD`` together.

Every kick of the same moment shares one pipeline of two script calls: the result store's batch
write of the kicks' records, then the append of their bodies to the ready stream. The records are
written first, so a worker never sees a message whose kick is not recorded yet.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from redis.exceptions import NoScriptError

from taskiq_kit.redis import scripts
from taskiq_kit.redis.batching import Batcher
from taskiq_kit.redis.connect import topology

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskiq_kit.redis.durability import ReplicaAcks
    from taskiq_kit.results.redis import RedisResultBackend
    from taskiq_kit.results.writes import RecordWrite


def _address(url: str) -> tuple[str, str, int, str, str | None]:
    if "+" in url.partition("://")[0]:
        # A cluster (never the same server: a batch's records span slots) or Sentinels.
        where = topology(url)
        return (where.kind, url.strip(), 0, "", where.service)
    parts = urlsplit(url)
    database = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return (
        parts.scheme,
        parts.hostname or "localhost",
        parts.port or 6379,
        database,
        parts.username,
    )


def same_server(store: RedisResultBackend[Any], url: str) -> bool:
    """Whether the Redis result ``store`` is on the server and database of ``url``.

    Never on a Redis Cluster: the records of a batch of kicks live in many slots.
    """
    if topology(url).kind == "cluster":
        return False
    return _address(store.url) == _address(url)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class KickPublisher:
    """Records and appends kicks in batches: one round trip for every kick waiting.

    Args:
        client: the broker's client.
        store: the Redis result store (on the same server).
        ready: the ready stream's key.
        acks: replicas that must have the kicks before they return (``WAIT``), if any.

    """

    def __init__(
        self,
        client: Redis,
        store: RedisResultBackend[Any],
        ready: str,
        *,
        acks: ReplicaAcks | None = None,
    ) -> None:
        self.client = client
        self.acks = acks
        self.store = store
        self.ready = ready
        self._write_sha, self._publish_sha = _sha(store.write_script), _sha(scripts.PUBLISH)
        self._scripts = (store.write_script, scripts.PUBLISH)
        self._batcher: Batcher[tuple[bytes, RecordWrite]] = Batcher(self._send)

    async def submit(self, body: bytes, write: RecordWrite) -> None:
        """Record ``write`` and append ``body``, with whatever else is waiting."""
        await self._batcher.submit((body, write))

    async def _send(self, items: list[tuple[bytes, RecordWrite]]) -> None:
        keys, args = self.store.script_call([write for _, write in items])
        calls: list[tuple[Any, ...]] = [
            (self._write_sha, len(keys), *keys, *args),
            (self._publish_sha, 1, self.ready, *(body for body, _ in items)),
        ]
        replies = await self._pipeline(calls)
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # The server lost its script cache (a restart): load, and redo what failed, in order.
            for script in self._scripts:
                await self.client.script_load(script)
            redone = await self._pipeline([calls[index] for index in missing])
            for index, reply in zip(missing, redone, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    async def _pipeline(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``calls`` in one pipeline (then ``WAIT`` for the replicas, when asked to)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(*call)
            if self.acks is not None:
                self.acks.add_wait(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if self.acks is not None:
            acked = replies.pop()
            if isinstance(acked, Exception):
                raise acked
            if not any(isinstance(reply, Exception) for reply in replies):
                self.acks.check(acked)
        return replies
