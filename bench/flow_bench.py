"""Flow-control benchmark, run by hand: the cost per task of a limited vs an unlimited task.

As a user runs it: one separate ``taskiq worker bench.flow_app:broker --workers 1
--max-async-tasks 100`` process (Redis broker, Redis store), this process kicking ``--tasks``
no-op tasks ``--batch`` at a time and waiting until every result is stored. The limits never
bind (``rate_limit="1000000/s"``, ``concurrency=100000``), so what is measured is what checking
them costs: a GCRA script call (rate), a slot taken and released (concurrency). Rows, one per
task: ``plain`` (no flow control), ``rated``, ``capped``, ``both``. Rounds are interleaved; the
medians of wall time and of the worker's CPU time per task are printed, with ratios to ``plain``.

How to run (Redis on loopback)::

    .venv/bin/python bench/flow_bench.py [--tasks 2000] [--batch 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lifecycle_bench import group_cpu  # noqa: E402
from tests.processes import spawned  # noqa: E402

TASKS = ("plain", "rated", "capped", "both")


async def one_run(
    broker: object, task_name: str, tasks: int, batch: int, pgid: int
) -> tuple[float, float]:
    """Kick ``tasks`` runs of ``task_name``; return (wall, worker CPU) seconds per task."""
    task = broker.find_task(task_name)  # type: ignore[attr-defined]
    cpu0, start = group_cpu(pgid), time.perf_counter()
    for offset in range(0, tasks, batch):
        handles = await asyncio.gather(*(task.kiq() for _ in range(min(batch, tasks - offset))))
        for handle in handles:
            while not await handle.is_ready():
                await asyncio.sleep(0.002)
    return (time.perf_counter() - start) / tasks, (group_cpu(pgid) - cpu0) / tasks


async def main(tasks: int, batch: int, rounds: int) -> None:
    """Run the rounds and print the table."""
    name = f"kit_flow_bench_{uuid.uuid4().hex[:8]}"
    os.environ["BENCH_NAME"] = name
    from bench.flow_app import broker

    args = [sys.executable, "-m", "taskiq", "worker", "bench.flow_app:broker"]
    args += ["--workers", "1", "--max-async-tasks", "100"]
    wall: dict[str, list[float]] = {task: [] for task in TASKS}
    cpu: dict[str, list[float]] = {task: [] for task in TASKS}
    with spawned("bench worker", args, {"BENCH_NAME": name}) as process:
        await broker.startup()
        try:
            await one_run(broker, "plain", batch, batch, process.pid)  # warm up
            for _ in range(rounds):
                for task in TASKS:
                    per_task, per_task_cpu = await one_run(broker, task, tasks, batch, process.pid)
                    wall[task].append(per_task)
                    cpu[task].append(per_task_cpu)
        finally:
            await broker.shutdown()
            from redis.asyncio import Redis

            client = Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
            keys = [key async for key in client.scan_iter(match=f"*{name}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()
    print(f"flow_bench: {tasks} tasks x {rounds} rounds, batch {batch}, Redis broker + store")
    print(
        f"{'task':8} {'wall us/task':>13} {'x plain':>8} {'worker CPU us/task':>19} {'x plain':>8}"
    )
    base_wall, base_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    for task in TASKS:
        w, c = statistics.median(wall[task]), statistics.median(cpu[task])
        print(f"{task:8} {w * 1e6:13.0f} {w / base_wall:8.2f} {c * 1e6:19.0f} {c / base_cpu:8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    asyncio.run(main(options.tasks, options.batch, options.rounds))
