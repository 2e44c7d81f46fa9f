"""Riding out an outage of the result store on the worker path: retry, back off, log once.

A worker must not die, nor acknowledge a message whose result or status it could not write,
because the store restarts. Every store call on the worker path (the delivery gate's record read,
the status writes, saving the result) goes through a :class:`StoreGuard`: while the store is
unreachable the call waits and tries again, with a back-off from 0.1 s up to 5 s, and the message
it belongs to stays unacknowledged. One WARNING line says the store is gone, one INFO line says
it is back, however many calls and messages waited.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from taskiq_kit.exceptions import ResultStoreNotAvailableError

logger = logging.getLogger("taskiq_kit.results")

_T = TypeVar("_T")
_P = ParamSpec("_P")

#: First and longest pause between two tries of a call while the store is down, in seconds.
FIRST_PAUSE = 0.1
MAX_PAUSE = 5.0
#: A failure this soon (seconds) after a recovery may be the same outage (stale pooled
#: connections failing once each after a restart): it is announced, and its end, only if the
#: store stays unreachable for ``RELAPSE_GRACE`` seconds.
RELAPSE_WINDOW = 10.0
RELAPSE_GRACE = 1.0
#: Redis error replies that mean "not now" rather than "never".
_REDIS_BUSY = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "OOM")
#: PostgreSQL error codes of a server that is gone, starting, stopping or full of connections.
_POSTGRES_GONE = ("57P01", "57P02", "57P03", "53300")


def _redis_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    try:
        from redis import exceptions  # noqa: PLC0415 - the redis extra is optional
    except ImportError:
        return (), ()
    return (exceptions.ConnectionError, exceptions.TimeoutError), (exceptions.ResponseError,)


_REDIS_DOWN, _REDIS_REPLY = _redis_errors()


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is unreachable for now (worth waiting for), not a bug."""
    if isinstance(exc, (ResultStoreNotAvailableError, OSError, asyncio.TimeoutError, *_REDIS_DOWN)):
        return True
    if _REDIS_REPLY and isinstance(exc, _REDIS_REPLY):
        return str(exc).startswith(_REDIS_BUSY)
    state = getattr(exc, "sqlstate", None)  # asyncpg errors, without importing asyncpg
    return isinstance(state, str) and (state.startswith("08") or state in _POSTGRES_GONE)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StoreGuard:
    """Retries the worker's calls to one store through an outage; logs its start and end once.

    Args:
        store: the store, named by its ``repr`` in the log lines (kit stores hide passwords).
        first_pause: seconds before the first retry of a call; doubled after each failure.
        max_pause: the longest pause between two tries.

    """

    def __init__(
        self, store: object, *, first_pause: float = FIRST_PAUSE, max_pause: float = MAX_PAUSE
    ) -> None:
        self.store = store
        self.first_pause = first_pause
        self.max_pause = max_pause
        self._down_since: float | None = None
        self._quiet = False
        self._recovered_at = -RELAPSE_WINDOW

    @property
    def down(self) -> bool:
        """Whether the last call to the store failed with an outage and none succeeded since."""
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """Note a call that failed with an outage; the first of an outage is logged.

        A failure just after a recovery (a stale pooled connection) is logged only if the store
        stays unreachable for over a second: then it is a new outage.
        """
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._quiet = now - self._recovered_at < RELAPSE_WINDOW
            announce = not self._quiet
        else:
            announce = self._quiet and now - self._down_since >= RELAPSE_GRACE
            self._quiet = self._quiet and not announce
        if announce:
            logger.warning(
                "The result store %r is unreachable (%s). Workers wait and retry every call to "
                "it (up to every %.0f s); their messages stay unacknowledged meanwhile.",
                self.store,
                _short(exc),
                self.max_pause,
            )

    def succeeded(self) -> None:
        """Note a call that succeeded; the end of an outage is logged."""
        down_since, self._down_since = self._down_since, None
        if down_since is None:
            return
        now = time.monotonic()
        self._recovered_at = now
        if not self._quiet:
            logger.info(
                "The result store %r is reachable again after %.1f s.",
                self.store,
                now - down_since,
            )

    async def call(
        self, function: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Await ``function(*args, **kwargs)``, trying again while the store is unreachable.

        Errors that are not an outage (see :func:`is_outage`) are raised at once. Cancelling
        the caller stops the retries.
        """
        pause = self.first_pause
        while True:
            try:
                result = await function(*args, **kwargs)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.failed(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.max_pause)
                continue
            if self._down_since is not None:
                self.succeeded()
            return result
