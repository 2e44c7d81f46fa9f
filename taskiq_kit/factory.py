"""``make_broker``: one URL in, a broker with delay, status and dead-lettering wired in out.

Everything is checked here, before anything connects: the URLs, the option names (against the
class that takes them), their types and ranges, and the ``TASKIQ_KIT_*`` settings that fill
what the call leaves out.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import ValidationError

from taskiq_kit._compat import require
from taskiq_kit.abort.signal import RedisAbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.exceptions import InvalidOptionError, TaskiqKitError
from taskiq_kit.memory import MemoryBroker, MemoryResultBackend
from taskiq_kit.options import check_options, check_value, parameters
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.settings import DAY, KitSettings
from taskiq_kit.urls import (
    BROKER_SCHEMES,
    REDIS_SCHEMES,
    RESULT_SCHEMES,
    ParsedURL,
    parse_url,
    redact,
)

logger = logging.getLogger("taskiq_kit")

_T = TypeVar("_T")

#: Options of ``make_broker`` given to the result store (what task records keep of arguments).
STORE_OPTIONS = ("record_args", "record_args_limit")

#: Options of ``make_broker`` that ``TASKIQ_KIT_*`` variables fill when the call leaves them out.
SETTING_OPTIONS = ("result_ttl", "connect_timeout", "max_delivery_attempts")


def _store_class(scheme: str) -> type[KitResultBackend[Any]]:
    if scheme == "memory":
        return MemoryResultBackend
    if scheme in REDIS_SCHEMES:
        require("redis", extra="redis", feature="the Redis result backend")
        from taskiq_kit.results.redis import RedisResultBackend  # noqa: PLC0415 - optional extra

        return RedisResultBackend
    require("asyncpg", extra="postgres", feature="the PostgreSQL result backend")
    from taskiq_kit.results.postgres import PostgresResultBackend  # noqa: PLC0415 - optional extra

    return PostgresResultBackend


def _broker_class(scheme: str) -> type[KitBroker]:
    if scheme == "memory":
        return MemoryBroker
    if scheme in ("amqp", "amqps"):
        from taskiq_kit.rabbit import RabbitBroker  # noqa: PLC0415 - optional extra

        return RabbitBroker
    from taskiq_kit.redis import RedisBroker  # noqa: PLC0415 - the redis extra is optional

    return RedisBroker


def _check_redis_url(parsed: ParsedURL, cls: type, extra: dict[str, object]) -> None:
    """The query of a Redis URL and the options passed on to redis-py, checked by name."""
    if parsed.scheme in REDIS_SCHEMES:
        from taskiq_kit.redis.connect import check_connection  # noqa: PLC0415 - optional extra

        named, _ = parameters(cls)
        check_connection(parsed.url, extra, target=cls.__name__, own=tuple(named))


def _build(cls: type[_T], *args: object, **options: object) -> _T:
    """``cls(*args, **options)``; a plain ``ValueError``/``TypeError`` becomes the kit's."""
    try:
        return cls(*args, **options)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, TaskiqKitError):
            raise
        raise InvalidOptionError(option=f"of {cls.__name__}", reason=str(exc)) from exc


def make_result_backend(
    url: str, *, result_ttl: float | None = DAY, **options: Any
) -> KitResultBackend[Any]:
    """Build the result backend for ``url`` (``redis://``, ``postgresql://`` or ``memory://``).

    Args:
        url: where results, status and progress live.
        result_ttl: seconds records are kept, or ``None`` to keep them.
        **options: passed to the backend class, e.g. ``prefix=`` for Redis, ``table=`` for
            PostgreSQL, ``serializer=`` for both, ``connect_timeout=`` for both.

    Raises:
        InvalidURLError: for a malformed URL or an unsupported scheme.
        MissingExtraError: when the backend's extra (``redis``, ``postgres``) is not installed.
        UnknownOptionError: (a ``TypeError``) for an option the backend does not take.
        InvalidOptionError: (a ``ValueError`` and ``TypeError``) for a value of the wrong type
            or out of range, e.g. ``result_ttl=0``.

    """
    parsed = parse_url(url, accepted=RESULT_SCHEMES)
    check_value("result_ttl", result_ttl, float | None)
    cls = _store_class(parsed.scheme)
    check_options(cls, options)
    if parsed.scheme == "memory":
        return _build(cls, result_ttl=result_ttl, **options)
    _check_redis_url(parsed, cls, {})
    return _build(cls, parsed.url, result_ttl=result_ttl, **options)


def _settings(given: KitSettings | None, explicit: dict[str, Any]) -> KitSettings:
    """The settings: ``explicit`` options over ``given`` or the ``TASKIQ_KIT_*`` environment."""
    for name, value in explicit.items():
        check_value(name, value, KitSettings.model_fields[name].annotation)
    if given is not None:
        return given.model_copy(update=explicit)
    try:
        return KitSettings(**explicit)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        name = "TASKIQ_KIT_" + str(error["loc"][0]).upper() if error["loc"] else "TASKIQ_KIT_*"
        raise InvalidOptionError(option=f"{name} (environment)", reason=error["msg"]) from None


def _default_result_url(broker: ParsedURL) -> str:
    if broker.scheme in REDIS_SCHEMES:
        return broker.url
    return "memory://"


def make_broker(
    url: str | None = None,
    *,
    result_url: str | None = None,
    result_options: dict[str, Any] | None = None,
    settings: KitSettings | None = None,
    **options: Any,
) -> KitBroker:
    """Build a broker from a URL.

    ``amqp://`` / ``amqps://`` give a RabbitMQ broker, ``redis://`` / ``rediss://`` a Redis broker
    (``redis+cluster://h1:p1,h2:p2/`` on a Redis Cluster, ``redis+sentinel://s1:p1,s2:p2/<service>/<db>``
    on the master the Sentinels name),
    ``memory://`` the embedded in-process broker. Results, status and progress go to
    ``result_url``; by default to the Redis server when the broker is Redis, else in memory.
    The returned broker runs under ``taskiq worker module:broker`` as usual.

    What the call leaves out comes from ``settings`` (by default :class:`KitSettings`, read
    from the ``TASKIQ_KIT_*`` environment variables): the URLs, ``result_ttl``,
    ``connect_timeout`` and ``max_delivery_attempts``. Arguments given here always win.

    Args:
        url: the broker URL (default: ``TASKIQ_KIT_BROKER_URL``, else ``memory://``).
        result_url: where results, status and progress live (default: ``TASKIQ_KIT_RESULT_URL``,
            else derived from ``url`` as above).
        result_options: passed to the result backend (see :func:`make_result_backend`), e.g.
            ``{"prefix": "myapp"}`` for the keys of a Redis store shared with other apps.
        settings: the settings to use instead of the environment.
        **options: passed to the broker class (see each broker's documentation).
            ``result_ttl`` (seconds, or ``None`` to keep) is given to the result backend,
            ``connect_timeout`` to both the broker and the result backend; ``record_args``
            and ``record_args_limit`` to the result backend (what task records keep of their
            arguments); ``worker_heartbeat`` (seconds) sets the worker registry's heartbeats.

    Returns:
        The broker. Call ``await broker.startup()`` (FastAPI: the kit's lifespan does) before kicking.

    Raises:
        InvalidURLError: for a malformed URL, an unsupported scheme, or a Redis URL whose
            database is not a number; the message never contains the password.
        MissingExtraError: when the transport's extra (``rabbit``, ``redis``) is not installed.
        UnknownOptionError: (a ``TypeError``) for an option the broker or the result backend
            does not take; the message lists the valid ones.
        InvalidOptionError: (a ``ValueError`` and ``TypeError``) for an option or a
            ``TASKIQ_KIT_*`` variable of the wrong type or out of range, e.g. ``result_ttl=0``.
            A ``result_backend`` option is refused too: pass ``result_url`` and ``result_options``.

    """
    if "result_backend" in options:
        reason = (
            "make_broker() builds the result backend itself: pass result_url= and "
            "result_options= (e.g. {'prefix': 'myapp'}) instead"
        )
        raise InvalidOptionError(option="result_backend", reason=reason)
    explicit = {name: options.pop(name) for name in SETTING_OPTIONS if name in options}
    for_store = {name: options.pop(name) for name in STORE_OPTIONS if name in options}
    heartbeat = options.pop("worker_heartbeat", None)
    if heartbeat is not None:
        check_value("worker_heartbeat", heartbeat, float)
    config = _settings(settings, explicit)
    if url is None:
        url = config.broker_url.get_secret_value()
    parsed = parse_url(url, accepted=BROKER_SCHEMES)
    if result_url is None and config.result_url is not None:
        result_url = config.result_url.get_secret_value()
    store_url = result_url or _default_result_url(parsed)
    cls = _broker_class(parsed.scheme)
    named, _ = parameters(cls)
    options.setdefault("max_delivery_attempts", config.max_delivery_attempts)
    if "connect_timeout" in named:
        options.setdefault("connect_timeout", config.connect_timeout)
    _check_redis_url(parsed, cls, check_options(cls, options))
    store_options = {**for_store, **(result_options or {})}
    store_scheme = parse_url(store_url, accepted=RESULT_SCHEMES).scheme
    if "connect_timeout" in parameters(_store_class(store_scheme))[0]:
        store_options.setdefault("connect_timeout", config.connect_timeout)
    backend = make_result_backend(store_url, result_ttl=config.result_ttl, **store_options)
    logger.debug("Building a %s broker for %s.", parsed.scheme, redact(parsed.url))
    broker = _make(parsed, cls, backend, store_url=store_url, store_scheme=store_scheme, **options)
    if heartbeat is not None:
        broker.worker_heartbeat = float(heartbeat)
    return broker


def _make(
    parsed: ParsedURL,
    cls: type[KitBroker],
    backend: KitResultBackend[Any],
    *,
    store_url: str,
    store_scheme: str,
    **options: Any,
) -> KitBroker:
    if parsed.scheme == "memory":
        return _build(cls, result_backend=backend, **options)
    if parsed.scheme in ("amqp", "amqps"):
        from taskiq_kit.rabbit import RabbitBroker  # noqa: PLC0415 - optional extra

        rabbit = _build(RabbitBroker, parsed.url, result_backend=backend, **options)
        if "abort_signal" not in options and store_scheme in REDIS_SCHEMES:
            # Aborts reach running tasks through the Redis that holds their tombstones, on a
            # channel of this exchange and database (Redis pub/sub is server-wide).
            rabbit.aborts.signal = RedisAbortSignal(store_url, scope=rabbit.names.exchange)
        return rabbit
    return _build(cls, parsed.url, result_backend=backend, **options)
