"""The Server-Sent Events progress stream of one task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from taskiq_kit.exceptions import TaskNotFoundError
from taskiq_kit.fastapi.client import TaskClient
from taskiq_kit.fastapi.models import ProgressOut, TaskInfo
from taskiq_kit.results.progress import ProgressReport

#: Marks the end of the progress watch in the stream's queue.
_DONE = object()


@dataclass(frozen=True)
class StreamSettings:
    """Timing of the progress stream.

    Attributes:
        heartbeat: seconds of silence after which a comment line is sent, so proxies keep
            the connection open.
        max_duration: seconds after which the stream closes even if the task is not finished
            (the last ``status`` event then has ``is_final: false``; reconnect to go on).
        poll_interval: seconds between reads of backends that do not push changes.

    """

    heartbeat: float = 15.0
    max_duration: float = 600.0
    poll_interval: float = 0.5

    def __post_init__(self) -> None:
        for name in ("heartbeat", "max_duration", "poll_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive seconds, got {getattr(self, name)!r}")


def sse_event(event: str, data: str) -> str:
    """One SSE event; ``data`` must be a single line (compact JSON is)."""
    return f"event: {event}\ndata: {data}\n\n"


async def _pump(
    client: TaskClient, task_id: str, poll_interval: float, queue: asyncio.Queue[object]
) -> None:
    try:
        async for report in client.watch(task_id, poll_interval=poll_interval):
            await queue.put(report)
    except TaskNotFoundError:
        pass  # the record vanished (TTL): end the stream
    finally:
        await queue.put(_DONE)


async def progress_events(
    client: TaskClient, task_id: str, settings: StreamSettings, *, with_traceback: bool
) -> AsyncIterator[str]:
    """Yield ``progress`` events as ``task_id`` reports, then one ``status`` event, then stop.

    The watch runs in its own task so heartbeats can be sent while it waits.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.max_duration
    queue: asyncio.Queue[object] = asyncio.Queue()
    watcher = asyncio.create_task(_pump(client, task_id, settings.poll_interval, queue))
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(queue.get(), min(settings.heartbeat, remaining))
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if not isinstance(item, ProgressReport):
                break
            yield sse_event("progress", ProgressOut.from_report(item).model_dump_json())
        try:
            record = await client.record(task_id)
        except TaskNotFoundError:
            return
        info = TaskInfo.build(record, await client.progress(task_id), with_traceback=with_traceback)
        yield sse_event("status", info.model_dump_json())
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
