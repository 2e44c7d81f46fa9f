"""Delayed tasks across a RabbitMQ restart: how many run, how many early, how late.

How to run (by hand, not in CI; needs RabbitMQ installed, the shared server is not touched)::

    .venv/bin/python bench/rabbit_restart_bench.py --tasks 1000 --rounds 3

Each round starts nothing new but a uuid-named topology on a private RabbitMQ node that the
script starts on free ports (``tests/private/rabbit.py``) and a separate ``taskiq worker``
process (``tests/rabbit/worker_app.py``, the kit's default configuration: quorum task queues,
the TTL ladder). It kicks ``--tasks`` tasks due evenly from 5 to 20 s ahead, stops the RabbitMQ
application 6 s after the first kick (``rabbitmqctl stop_app``), starts it again at 12 s
(``start_app``), and waits up to ``--wait`` seconds for every task to run. Each run records how
late it ran after its due time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.private.rabbit import PrivateRabbit, private_rabbit_node  # noqa: E402
from tests.rabbit.workers import Workers  # noqa: E402

STOP_AT, START_AT = 6.0, 12.0


async def one_round(node: PrivateRabbit, tasks: int, wait: float, *, timeline: bool) -> str:
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as out:
        workers = Workers(node.url, f"bench-x-{run}", f"bench-q-{run}", Path(out) / "ran.txt")
        try:
            workers.start()
            async with workers.client() as broker:
                task = broker.register_task(_record_at, task_name="record_at")
                start = time.time()
                due = {n: start + 5 + 15 * n / tasks for n in range(tasks)}
                for first in range(0, tasks, 100):
                    await asyncio.gather(
                        *(
                            task.kicker().with_labels(eta=due[n]).kiq(n, due[n])
                            for n in range(first, min(tasks, first + 100))
                        )
                    )
                await asyncio.sleep(max(0.0, start + STOP_AT - time.time()))
                await asyncio.to_thread(node.stop_app)
                stopped = time.time()  # stop_app returns once the application has stopped
                await asyncio.sleep(max(0.0, start + START_AT - time.time()))
                await asyncio.to_thread(node.ctl, "start_app")
                restarted = time.time()  # start_app returns once the application runs
                await asyncio.to_thread(node.ctl, "await_startup")
                deadline = time.monotonic() + wait
                while len(workers.recorded()) < tasks and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
            late = {int(n): float(x) for n, x in workers.lines()}
        finally:
            await workers.close()
    lost = tasks - len(late)
    early = sum(1 for x in late.values() if x < 0)
    down = restarted - stopped
    text = f"ran {len(late)}/{tasks}, lost {lost}, early {early}, app down {down:.1f} s"
    if late:
        text += (
            f"; late: p50 {statistics.median(late.values()) * 1000:.0f} ms, "
            f"max {max(late.values()):.1f} s"
        )
    if timeline:  # every 10th task: when it was due and when it ran, from the restart
        for n in sorted(late)[::10]:
            ran = due[n] + late[n] - restarted
            print(f"  due {due[n] - restarted:6.2f} s, ran {ran:6.2f} s after the restart")
    return text


async def _record_at(n: int, due_at: float) -> None:
    raise AssertionError("runs in the worker process only")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for stragglers")
    parser.add_argument("--timeline", action="store_true", help="print when tasks ran")
    args = parser.parse_args()
    with private_rabbit_node() as node:
        for n in range(args.rounds):
            print(
                f"round {n + 1}: {await one_round(node, args.tasks, args.wait, timeline=args.timeline)}",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
