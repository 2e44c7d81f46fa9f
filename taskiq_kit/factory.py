"""``make_broker``: one URL in, a broker with delay, status and dead-lettering wired in out."""

from __future__ import annotations

import logging
from typing import Any

from taskiq_kit._compat import require
from taskiq_kit.abort.signal import RedisAbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.memory import MemoryBroker, MemoryResultBackend
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.settings import DAY
from taskiq_kit.urls import BROKER_SCHEMES, RESULT_SCHEMES, ParsedURL, parse_url, redact

logger = logging.getLogger("taskiq_kit")


def make_result_backend(
    url: str, *, result_ttl: float | None = DAY, **options: Any
) -> KitResultBackend[Any]:
    """Build the result backend for ``url`` (``redis://``, ``postgresql://`` or ``memory://``).

    Args:
        url: where results, status and progress live.
        result_ttl: seconds records are kept, or ``None`` to keep them.
        **options: passed to the backend class, e.g. ``prefix=`` for Redis, ``table=`` for
            PostgreSQL, ``serializer=`` for both.

    Raises:
        InvalidURLError: for a malformed URL or an unsupported scheme.
        MissingExtraError: when the backend's extra (``redis``, ``postgres``) is not installed.
        TypeError: for an option the backend does not take.

    """
    parsed = parse_url(url, accepted=RESULT_SCHEMES)
    if parsed.scheme == "memory":
        return MemoryResultBackend(result_ttl=result_ttl, **options)
    if parsed.scheme in ("redis", "rediss"):
        require("redis", extra="redis", feature="the Redis result backend")
        from taskiq_kit.results.redis import RedisResultBackend  # noqa: PLC0415 - optional extra

        return RedisResultBackend(parsed.url, result_ttl=result_ttl, **options)
    require("asyncpg", extra="postgres", feature="the PostgreSQL result backend")
    from taskiq_kit.results.postgres import PostgresResultBackend  # noqa: PLC0415 - optional extra

    return PostgresResultBackend(parsed.url, result_ttl=result_ttl, **options)


def _default_result_url(broker: ParsedURL) -> str:
    if broker.scheme in ("redis", "rediss"):
        return broker.url
    return "memory://"


def make_broker(
    url: str,
    *,
    result_url: str | None = None,
    result_options: dict[str, Any] | None = None,
    **options: Any,
) -> KitBroker:
    """Build a broker from a URL.

    ``amqp://`` / ``amqps://`` give a RabbitMQ broker, ``redis://`` / ``rediss://`` a Redis broker,
    ``memory://`` the embedded in-process broker. Results, status and progress go to
    ``result_url``; by default to the Redis server when the broker is Redis, else in memory.
    The returned broker runs under ``taskiq worker module:broker`` as usual.

    Args:
        url: the broker URL.
        result_url: where results, status and progress live.
        result_options: passed to the result backend (see :func:`make_result_backend`), e.g.
            ``{"prefix": "myapp"}`` for the keys of a Redis store shared with other apps.
        **options: passed to the broker class (see each broker's documentation).
            ``result_ttl`` (seconds, or ``None`` to keep) is given to the result backend.

    Returns:
        The broker. Call ``await broker.startup()`` (FastAPI: the kit's lifespan does) before kicking.

    Raises:
        InvalidURLError: for a malformed URL or an unsupported scheme; the message names the
            accepted schemes and never contains the password.
        MissingExtraError: when the transport's extra (``rabbit``, ``redis``) is not installed.
        TypeError: for a result option the result backend does not take, or a
            ``result_backend`` option (pass ``result_url`` and ``result_options`` instead).

    """
    if "result_backend" in options:
        raise TypeError(
            "make_broker() builds the result backend itself: pass result_url= and "
            "result_options= (e.g. {'prefix': 'myapp'}) instead of result_backend="
        )
    parsed = parse_url(url, accepted=BROKER_SCHEMES)
    result_ttl = options.pop("result_ttl", DAY)
    store_url = result_url or _default_result_url(parsed)
    backend = make_result_backend(store_url, result_ttl=result_ttl, **(result_options or {}))
    logger.debug("Building a %s broker for %s.", parsed.scheme, redact(parsed.url))
    if parsed.scheme == "memory":
        return MemoryBroker(result_backend=backend, **options)
    if parsed.scheme in ("amqp", "amqps"):
        from taskiq_kit.rabbit import RabbitBroker  # noqa: PLC0415 - optional extra

        if store_url.lower().startswith(("redis://", "rediss://")):
            # Aborts reach running tasks through the Redis that holds their tombstones.
            options.setdefault("abort_signal", RedisAbortSignal(store_url))
        return RabbitBroker(url, result_backend=backend, **options)
    from taskiq_kit.redis import RedisBroker  # noqa: PLC0415 - the redis extra is optional

    return RedisBroker(parsed.url, result_backend=backend, **options)
