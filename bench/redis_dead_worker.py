"""Recovery time of a killed Redis worker's tasks: from SIGKILL to their completion elsewhere.

How to run (by hand, not in CI; Redis on loopback)::

    .venv/bin/python bench/redis_dead_worker.py [--url redis://127.0.0.1:6379/0] [--rounds 10]
    .venv/bin/python bench/redis_dead_worker.py --dead-after 3600 --rounds 3   # idle_timeout path only

Each round starts two ``taskiq worker`` processes in the kit's default configuration (results in
the same Redis, ``idle_timeout`` 30 s, ``heartbeat_interval`` 1 s, ``dead_after`` 3 s): the victim
(``--max-async-tasks 2``) takes 6 tasks (2 running, 4 read ahead), the survivor idles; the victim
is SIGKILLed and the time until all 6 completed on the survivor is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dead_worker_tasks import done_key, hang_key  # noqa: E402
from taskiq_kit import make_broker  # noqa: E402
from taskiq_kit.redis import RedisBroker  # noqa: E402

TASKS = 6


@contextlib.contextmanager
def _worker(queue: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "taskiq", "worker", "bench.dead_worker_tasks:broker", *args],
        cwd=ROOT,
        env={**os.environ, "BENCH_QUEUE": queue},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench got stuck")
        await asyncio.sleep(0.01)


async def one_round(url: str) -> float:
    """Seconds from the kill to the last of the victim's tasks done on the survivor."""
    queue = f"bench-dead-{uuid.uuid4().hex[:8]}"
    broker = make_broker(url, queue_name=queue)
    assert isinstance(broker, RedisBroker)

    @broker.task(task_name="hang")
    async def hang(number: int) -> None:
        raise AssertionError("runs in the worker process")

    redis = Redis.from_url(url)
    keys = broker.keys
    await broker.startup()
    try:
        await redis.set(hang_key(queue), 1)
        with _worker(queue, "--workers", "1", "--max-async-tasks", "2") as victim:
            for number in range(TASKS):
                await hang.kiq(number)

            async def held() -> bool:
                try:
                    pending = await redis.xpending(keys.ready, keys.group)
                except ResponseError:  # no group yet
                    return False
                return int(pending["pending"]) == TASKS

            await _until(held)
            with _worker(queue, "--workers", "1"):

                async def beating() -> bool:
                    return int(await redis.zcard(keys.heartbeats)) == 2

                await _until(beating)
                os.killpg(victim.pid, signal.SIGKILL)
                killed = time.monotonic()
                await redis.delete(hang_key(queue))

                async def done() -> bool:
                    return int(await redis.scard(done_key(queue))) == TASKS

                await _until(done)
                return time.monotonic() - killed
    finally:
        await redis.delete(done_key(queue), hang_key(queue), *keys.all())
        await broker.shutdown()
        await redis.aclose()


async def run(args: argparse.Namespace) -> None:
    os.environ["BENCH_BROKER_URL"] = args.url
    if args.dead_after is not None:
        os.environ["BENCH_DEAD_AFTER"] = str(args.dead_after)
    times: list[float] = []
    for number in range(args.rounds):
        seconds = await one_round(args.url)
        times.append(seconds)
        print(f"round {number + 1}: {seconds:.2f} s")
    print(
        f"{args.rounds} kills, {TASKS} tasks held each: recovered in p50 "
        f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--dead-after", type=float, default=None, help="the workers' dead_after (default: 3 s)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
