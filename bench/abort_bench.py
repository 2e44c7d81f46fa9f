"""Abort latency: from ``abort_task`` returning to the running task seeing its cancellation.

How to run (by hand, not in CI; servers on loopback):

    .venv/bin/python bench/abort_bench.py memory://
    .venv/bin/python bench/abort_bench.py redis://127.0.0.1:6379/0
    .venv/bin/python bench/abort_bench.py amqp://guest:guest@127.0.0.1:5672/ --result-url redis://127.0.0.1:6379/0

The worker is a separate ``taskiq worker`` process for network brokers (so the abort crosses
processes, as in production) and the in-process consumer for ``memory://``. Prints p50/p99 over
``--aborts`` aborts and the ratio of p99 to arq's 0.5 s abort poll.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskiq_kit import TaskStatus, abort_task, get_status  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    os.environ["BENCH_BROKER_URL"] = args.url
    if args.result_url:
        os.environ["BENCH_RESULT_URL"] = args.result_url
    os.environ["BENCH_RUN"] = uuid.uuid4().hex[:8]
    from bench import abort_tasks  # the environment above configures its broker

    broker, long_task = abort_tasks.broker, abort_tasks.long_task
    worker = None
    if not args.url.startswith("memory"):
        worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
            [
                sys.executable,
                "-m",
                "taskiq",
                "worker",
                "bench.abort_tasks:broker",
                "--workers",
                "1",
            ],
            cwd=ROOT,
            env=os.environ.copy(),
        )
    await broker.startup()
    latencies: list[float] = []
    from_call: list[float] = []
    try:
        import redis.asyncio as aioredis

        stamps = aioredis.Redis.from_url(
            os.environ.get("BENCH_STAMP_URL", "redis://127.0.0.1:6379/0")
        )
        key = f"bench-abort-{os.environ['BENCH_RUN']}"
        for _ in range(args.aborts):
            task = await long_task.kiq(key)
            while await get_status(broker, task.task_id) is not TaskStatus.STARTED:
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.01)
            called = time.time()
            await abort_task(broker, task.task_id, wait=0)
            returned = time.time()
            while (stamp := await stamps.hget(key, task.task_id)) is None:
                await asyncio.sleep(0.001)
            latencies.append(float(stamp) - returned)
            from_call.append(float(stamp) - called)
        await stamps.delete(key)
        await stamps.aclose()
    finally:
        await broker.shutdown()
        if worker is not None:
            worker.terminate()
            worker.wait(30)
    latencies.sort()
    from_call.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"broker {args.url.split('://')[0]}: {len(latencies)} aborts")
    print(
        f"from abort_task returning to the task's cancellation: p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {latencies[-1] * 1000:.1f} ms (negative: cancelled before it returned)"
    )
    call_p50 = statistics.median(from_call) * 1000
    call_p99 = from_call[int(len(from_call) * 0.99) - 1] * 1000
    print(
        f"from calling abort_task to the cancellation: p50 {call_p50:.1f} ms, p99 {call_p99:.1f} ms"
    )
    print(f"p99 vs arq's 0.5 s poll: {p99 / 500:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--result-url", default=None)
    parser.add_argument("--aborts", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
