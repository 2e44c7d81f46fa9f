"""Many calls of one Lua script in one pipeline, on one server or on a Redis Cluster.

redis-py's ``Script`` objects cannot run in a cluster pipeline (its ``evalsha`` helper is blocked
there, since a node may lack the script), so the calls are sent as raw ``EVALSHA`` commands,
which the pipeline routes by their first key like any other command. A node that lost its
script cache (a restart, ``SCRIPT FLUSH``) answers ``NOSCRIPT``: the script is then loaded (on
every primary of a cluster) and only the failed calls are sent again (a redo of a call that was
applied would apply it twice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient

#: The KEYS and ARGV of one script call.
Call = tuple[Sequence[str], Sequence[Any]]


def sha1(source: str) -> str:
    """The script's SHA1 (its name for ``EVALSHA``)."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


async def _send(client: RedisClient, sha: str, calls: Sequence[Call]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


async def eval_many(
    client: RedisClient, source: str, calls: Sequence[Call], *, raise_on_error: bool = True
) -> list[Any]:
    """Run ``source`` once per call, all in one pipeline (a round trip per node); the replies.

    Every call must declare its keys (at least one on a cluster: the one naming its slot).
    With ``raise_on_error=False`` a call's error is its reply (an exception object).

    Raises:
        Exception: the first error a call answered (after the others were applied).

    """
    if not calls:
        return []
    sha = sha1(source)
    replies = await _send(client, sha, calls)
    missing = [n for n, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await client.script_load(source)  # on every primary of a cluster
        redone = await _send(client, sha, [calls[n] for n in missing])
        for n, reply in zip(missing, redone, strict=True):
            replies[n] = reply
    if raise_on_error:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies
