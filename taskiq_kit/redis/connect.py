"""Reaching Redis: the connection options checked when a broker is built, the start-up ping.

Shared by the Redis broker and the Redis result store, so both fail the same way: a server that
is down is a :class:`~taskiq_kit.exceptions.BrokerNotAvailableError` (the store's is a
:class:`~taskiq_kit.exceptions.ResultStoreNotAvailableError`), one that refuses the URL's
credentials or database an :class:`~taskiq_kit.exceptions.AccessRefusedError`, each naming the
redacted URL.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection, parse_url
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskiq_kit.exceptions import (
    AccessRefusedError,
    BrokerNotAvailableError,
    InvalidURLError,
    UnknownOptionError,
)
from taskiq_kit.urls import redact, scrub

#: Errors meaning "Redis is not reachable right now".
UNREACHABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
)
#: Errors meaning "Redis answered and said no" (credentials, ACL, a database it does not have).
REFUSED: tuple[type[BaseException], ...] = (AuthenticationError, AuthorizationError, ResponseError)


def _keyword_names(cls: type) -> set[str]:
    """Keyword parameters of ``cls``'s constructor, following ``**kwargs`` up its bases."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = inspect.signature(init).parameters
        names.update(
            name
            for name, param in params.items()
            if name != "self" and param.kind in (param.KEYWORD_ONLY, param.POSITIONAL_OR_KEYWORD)
        )
        if all(param.kind is not param.VAR_KEYWORD for param in params.values()):
            break
    return names


def _valid_names(connection_class: object) -> set[str]:
    if not isinstance(connection_class, type):
        connection_class = Connection
    return _keyword_names(BlockingConnectionPool) | _keyword_names(connection_class)


def check_connection(
    url: str, options: Mapping[str, object], *, target: str, own: tuple[str, ...] = ()
) -> None:
    """Check ``url``'s query parameters and ``options`` against what redis-py's connections take.

    Args:
        url: the ``redis://`` / ``rediss://`` URL.
        options: keyword options meant for redis-py's connection pool and connections.
        target: the class the options were given to (for the message).
        own: that class's own options (listed as valid too).

    Raises:
        InvalidURLError: for a query parameter redis-py cannot read.
        UnknownOptionError: for an option (or query parameter) redis-py does not take.

    """
    try:
        from_url = parse_url(url)
    except ValueError as exc:
        accepted = "redis://, rediss://"
        raise InvalidURLError(
            url=redact(url), reason=scrub(str(exc), url), accepted=accepted
        ) from None
    connection_class = from_url.get("connection_class", Connection)
    valid = _valid_names(connection_class)
    for name in [*from_url, *options]:
        if name not in valid:
            listed = (
                f"{', '.join(sorted(own))}; redis-py connection options: {', '.join(sorted(valid))}"
            )
            raise UnknownOptionError(target=target, option=name, valid=listed)


async def ping(
    client: Redis,
    *,
    url: str,
    target: str,
    timeout: float,
    unavailable: type[BrokerNotAvailableError] = BrokerNotAvailableError,
) -> None:
    """PING Redis through ``client``; a connection is opened (AUTH, SELECT) if none is.

    Raises:
        AccessRefusedError: when Redis refuses the credentials or the database of ``url``.
        BrokerNotAvailableError: (``unavailable``) when Redis does not answer within ``timeout``.

    """
    try:
        await asyncio.wait_for(client.ping(), timeout)
    except REFUSED as exc:
        raise AccessRefusedError(target=target, reason=refusal(exc, url)) from exc
    except UNREACHABLE as exc:
        reason = scrub(str(exc), url) or type(exc).__name__
        raise unavailable(target=target, timeout=timeout, reason=reason) from exc


def refusal(exc: BaseException, url: str) -> str:
    """What to tell the user when Redis refuses the connection."""
    text = scrub(str(exc), url) or type(exc).__name__
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return f"{text}; check the user name and password in the URL"
    if "DB index" in text:
        return f"{text}; use a database number below the server's `databases` setting (often 16)"
    return text
