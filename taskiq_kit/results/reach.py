"""A store that cannot be reached raises the kit's error, naming the store and its redacted URL."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from taskiq_kit.exceptions import ResultStoreNotAvailableError
from taskiq_kit.urls import scrub

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ReachableStore(Protocol):
    """What :func:`reaching` needs of a store."""

    url: str
    connect_timeout: float
    #: Driver errors meaning "the server is not reachable right now".
    unreachable_errors: tuple[type[BaseException], ...]

    @property
    def target(self) -> str:
        """The store and its redacted URL, e.g. ``Redis result store at redis://h:6379/0``."""


_S = TypeVar("_S", bound=ReachableStore)


def unavailable(store: ReachableStore, exc: BaseException) -> ResultStoreNotAvailableError:
    """The kit's error for ``exc``, a driver error of ``store.unreachable_errors``."""
    return ResultStoreNotAvailableError(
        target=store.target,
        timeout=store.connect_timeout,
        reason=scrub(str(exc), store.url) or type(exc).__name__,
    )


def reaching(
    method: Callable[Concatenate[_S, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """Wrap a store method: its driver's connection errors become ``ResultStoreNotAvailableError``.

    A kick writes the task's status before it sends the task, so this is what a kick raises
    when the store is down (a ``BrokerNotAvailableError``, which ``kiq()`` raises as itself).
    """

    @functools.wraps(method)
    async def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(self, *args, **kwargs)
        except self.unreachable_errors as exc:
            raise unavailable(self, exc) from exc

    return wrapper
