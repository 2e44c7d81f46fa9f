"""What the kit's shared layer costs per task, on ``memory://`` (run by hand, not in CI).

The same no-op tasks run through the embedded broker twice per round: as built (timing labels,
status records, abort bookkeeping, the delivery gate) and with that layer switched off. Nothing
else costs much on ``memory://``, so the difference is the layer's own CPU per task, the part every
transport pays on top of its own. A diagnostic, not a speed goal: no peer has this layer.

How to run::

    .venv/bin/python bench/layer_bench.py --tasks 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from rabbit_bench import OpenGate, taskiq_throughput

from taskiq_kit import make_broker


async def cpu_per_task(count: int, concurrency: int, *, bare: bool) -> float:
    """CPU microseconds per task of this process, kicking and running ``count`` no-op tasks."""
    broker = make_broker("memory://")
    if bare:
        broker.middlewares = []
        broker.gate = OpenGate(
            lifecycle=broker.gate.lifecycle,
            parse=broker.gate.parse,
            find_task=broker.gate.find_task,
            max_attempts=broker.gate.max_attempts,
        )
    run = await taskiq_throughput(broker, count, concurrency, receiver=False)
    return run.cpu_us


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100, help="kicks in flight")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    full: list[float] = []
    bare: list[float] = []
    for _ in range(args.rounds):
        full.append(await cpu_per_task(args.tasks, args.concurrency, bare=False))
        bare.append(await cpu_per_task(args.tasks, args.concurrency, bare=True))
    with_layer, without = statistics.median(full), statistics.median(bare)
    print(
        f"memory://, {args.tasks} no-op tasks, {args.concurrency} kicks in flight, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"  with the kit's layer     {with_layer:6.0f} us CPU/task")
    print(f"  layer switched off       {without:6.0f} us CPU/task")
    print(f"  the layer                {with_layer - without:6.0f} us CPU/task")


if __name__ == "__main__":
    asyncio.run(main())
