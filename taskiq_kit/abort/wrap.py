"""Wrapping task functions so an abort stops the task's own code and nothing else.

taskiq awaits a task's coroutine inside the callback that also saves its result and acknowledges
its message. Cancelling that callback outright would lose both. The kit wraps each task function
at registration instead: an abort cancels the task while it awaits the function's coroutine (on
Python 3.10, a child task running it), and the wrapper takes that cancellation back and raises
:class:`~taskiq_kit.exceptions.TaskAbortedError`, a normal task error that taskiq stores as the
result before it acknowledges the message. A run the lifecycle refused (a duplicate delivery of a
finished kick) is skipped: the wrapper raises taskiq's ``NoResultError`` without calling the
function, so nothing is stored and no retry middleware retries it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from taskiq.exceptions import NoResultError

from taskiq_kit.abort.running import CURRENT, RunContext, ThreadInterrupt
from taskiq_kit.exceptions import TaskAbortedError

_MARK = "__taskiq_kit_abortable__"


def abortable(func: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``func`` wrapped so that an abort stops it (idempotent).

    Outside a kit worker (a direct call, a process pool) the wrapper just calls ``func``.
    """
    if getattr(func, _MARK, False):
        return func
    wrapper = _wrap_async(func) if inspect.iscoroutinefunction(func) else _wrap_sync(func)
    setattr(wrapper, _MARK, True)
    # Like taskiq's own decorator, publish the wrapper under its own name in the function's module,
    # so a ProcessPoolExecutor can pickle it by reference.
    wrapper.__name__ = f"{func.__name__}__kit_abortable"
    owner, dot, _ = func.__qualname__.rpartition(".")
    wrapper.__qualname__ = f"{owner}{dot}{wrapper.__name__}"
    module = sys.modules.get(func.__module__)
    if module is not None:
        setattr(module, wrapper.__name__, wrapper)
    return wrapper


def _wrap_async(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> Any:
        run_ctx = CURRENT.get()
        if run_ctx is None:
            return await func(*args, **kwargs)
        if run_ctx.skipped:
            raise NoResultError
        if run_ctx.aborted:
            raise TaskAbortedError(task_id=run_ctx.task_id)
        return await _run_abortable(run_ctx, func(*args, **kwargs))

    return run


if sys.version_info >= (3, 11):

    async def _run_abortable(run_ctx: RunContext, coro: Awaitable[Any]) -> Any:
        """Await ``coro`` in the current task; an abort cancels this task while it does.

        The abort's cancellation is told from any other (a timeout, a shutdown) by the task's
        count of pending cancellations: once the abort's is taken back, any left is another's.
        """
        task = asyncio.current_task()
        assert task is not None
        run_ctx.target = task
        try:
            return await coro
        except asyncio.CancelledError:
            if run_ctx.aborted:
                run_ctx.target = None
                if task.uncancel() == 0:
                    raise TaskAbortedError(task_id=run_ctx.task_id) from None
            raise
        finally:
            if run_ctx.target is task:
                run_ctx.target = None
                if run_ctx.aborted:  # the coroutine swallowed the abort's cancellation
                    task.uncancel()

else:

    async def _run_abortable(run_ctx: RunContext, coro: Awaitable[Any]) -> Any:
        """Await ``coro`` as a child task that an abort cancels (no ``Task.uncancel`` here)."""
        child = asyncio.ensure_future(coro)
        run_ctx.target = child
        try:
            return await child
        except asyncio.CancelledError:
            if run_ctx.aborted and not _being_cancelled():
                raise TaskAbortedError(task_id=run_ctx.task_id) from None
            raise
        finally:
            run_ctx.target = None


def _being_cancelled() -> bool:
    """Whether the caller's own task is being cancelled (a timeout or shutdown, not an abort)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False


def _wrap_sync(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        run_ctx = CURRENT.get()
        if run_ctx is None:
            return func(*args, **kwargs)
        return _run_in_thread(run_ctx, func, args, kwargs)

    return run


def _run_in_thread(
    run_ctx: RunContext, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if run_ctx.skipped:
        raise NoResultError
    try:
        if run_ctx.aborted:
            raise TaskAbortedError(task_id=run_ctx.task_id)
        run_ctx.enter_thread()
        try:
            return func(*args, **kwargs)
        finally:
            run_ctx.leave_thread()
    except ThreadInterrupt:
        run_ctx.thread_id = None
        raise TaskAbortedError(task_id=run_ctx.task_id) from None
