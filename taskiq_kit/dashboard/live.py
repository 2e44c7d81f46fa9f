"""One Server-Sent Events stream for every unfinished task shown on a page.

Browsers open at most six connections to a host over HTTP/1.1, so a table of running tasks gets
one stream for all of them rather than one per task. Each task is followed with the results API's
progress watch (pushed by the Redis and memory stores, polled on the others); the stream sends

* ``progress`` events: ``{"task_id", "fraction", "message"}`` as tasks report;
* one ``status`` event per task when it is final: ``{"task_id", "status", "is_final"}``;
* a ``done`` event when every task is final (or the stream's time is up), then ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from taskiq_kit.exceptions import TaskiqKitError, TaskNotFoundError
from taskiq_kit.fastapi.client import TaskClient
from taskiq_kit.fastapi.stream import StreamSettings, sse_event
from taskiq_kit.results.record import TaskStatus

#: The most tasks one stream follows.
MAX_TASKS = 200


async def _follow(
    client: TaskClient, task_id: str, settings: StreamSettings, out: asyncio.Queue[str | None]
) -> None:
    try:
        async for report in client.watch(task_id, poll_interval=settings.poll_interval):
            data = {"task_id": task_id, "fraction": report.fraction, "message": report.message}
            await out.put(sse_event("progress", json.dumps(data)))
        status: TaskStatus | None = await client.status(task_id)
    except TaskNotFoundError:
        status = None  # gone (its record expired)
    except TaskiqKitError:
        await out.put(None)  # a malformed id or a store error: nothing to show for this task
        return
    data = {"task_id": task_id, "status": None if status is None else status.value}
    await out.put(sse_event("status", json.dumps(data)))
    await out.put(None)


async def task_events(
    client: TaskClient, task_ids: list[str], settings: StreamSettings
) -> AsyncIterator[str]:
    """Yield the events of ``task_ids`` until all are final or ``settings.max_duration`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.max_duration
    out: asyncio.Queue[str | None] = asyncio.Queue()
    ids = list(dict.fromkeys(task_ids))[:MAX_TASKS]
    followers = [asyncio.create_task(_follow(client, tid, settings, out)) for tid in ids]
    running = len(followers)
    try:
        yield ": live\n\n"
        while (running or not out.empty()) and (remaining := deadline - loop.time()) > 0:
            try:
                item = await asyncio.wait_for(out.get(), min(settings.heartbeat, remaining))
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                running -= 1
            else:
                yield item
        yield sse_event("done", json.dumps({"finished": running == 0}))
    finally:
        for follower in followers:
            follower.cancel()
        for follower in followers:
            with contextlib.suppress(asyncio.CancelledError):
                await follower
