"""Wrapping task functions so an abort stops the task's own code and nothing else.

taskiq awaits a task's coroutine inside the callback that also saves its result and acknowledges
its message. Cancelling that callback would lose both. The kit wraps each task function at
registration instead: the coroutine runs as a child task that an abort cancels, and the wrapper
turns that cancellation into :class:`~taskiq_kit.exceptions.TaskAbortedError`, a normal task error
that taskiq stores as the result before it acknowledges the message.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

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
        if run_ctx.aborted.is_set():
            raise TaskAbortedError(task_id=run_ctx.task_id)
        child = asyncio.ensure_future(func(*args, **kwargs))
        run_ctx.child = child
        try:
            return await child
        except asyncio.CancelledError:
            if run_ctx.aborted.is_set() and not _being_cancelled():
                raise TaskAbortedError(task_id=run_ctx.task_id) from None
            raise
        finally:
            run_ctx.child = None

    return run


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
    try:
        if run_ctx.aborted.is_set():
            raise TaskAbortedError(task_id=run_ctx.task_id)
        with run_ctx.lock:
            run_ctx.thread_id = threading.get_ident()
        try:
            return func(*args, **kwargs)
        finally:
            with run_ctx.lock:
                run_ctx.thread_id = None
    except ThreadInterrupt:
        run_ctx.thread_id = None
        raise TaskAbortedError(task_id=run_ctx.task_id) from None
