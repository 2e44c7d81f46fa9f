"""Kicks from another process: ``python -m tests.flow.kick_app <task> <count> <tag>``.

Waits for the test's go signal (a Redis key), then kicks ``count`` times at once and records
the task ids it got back in Redis (``kit-test:{<name>}:kicks:<task>``).
"""

from __future__ import annotations

import asyncio
import sys
import time

from tests.flow.worker_app import NAME, broker, debounced, key, redis, unique


async def main(task: str, count: int, tag: str) -> None:
    """Kick ``task`` ``count`` times once the go signal is set."""
    await broker.startup()
    client = redis()
    try:
        await client.incr(key(NAME, "kickers-ready"))
        deadline = time.monotonic() + 30
        while not await client.exists(key(NAME, "go")):
            if time.monotonic() > deadline:
                raise SystemExit("no go signal")
            await asyncio.sleep(0.005)
        if task == "unique":
            handles = await asyncio.gather(*(unique.kiq(7) for _ in range(count)))
        else:
            handles = await asyncio.gather(
                *(debounced.kiq("doc-1", f"{tag}-{i}") for i in range(count))
            )
        await client.rpush(key(NAME, f"kicks:{task}"), *(handle.task_id for handle in handles))
    finally:
        await broker.shutdown()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
