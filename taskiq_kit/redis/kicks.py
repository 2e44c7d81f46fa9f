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

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskiq_kit.results.redis import RedisResultBackend
    from taskiq_kit.results.writes import RecordWrite


def _address(url: str) -> tuple[str, str, int, str, str | None]:
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
    """Whether the Redis result ``store`` is on the server and database of ``url``."""
    return _address(store.url) == _address(url)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


class KickPublisher:
    """Records and appends kicks in batches: one round trip for every kick waiting.

    Args:
        client: the broker's client.
        store: the Redis result store (on the same server).
        ready: the ready stream's key.

    """

    def __init__(self, client: Redis, store: RedisResultBackend[Any], ready: str) -> None:
        self.client = client
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
        async with self.client.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(*call)
            replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # The server lost its script cache (a restart): load, and redo what failed, in order.
            for script in self._scripts:
                await self.client.script_load(script)
            for index, reply in enumerate(replies):
                if isinstance(reply, NoScriptError):
                    replies[index] = await self.client.evalsha(*calls[index])
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
