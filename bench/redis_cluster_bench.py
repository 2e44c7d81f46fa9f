"""Redis Cluster and Sentinel: tasks/s beside one server, and what a master failover costs.

How to run (by hand, not in CI; needs ``redis-server`` and ``redis-cli``; the shared server is not
touched)::

    .venv/bin/python bench/redis_cluster_bench.py --tasks 5000 --rounds 3

The script starts, on free loopback ports, a private 3-master Redis Cluster
(``tests/private/redis_cluster.py``), a private single ``redis-server`` without persistence
(``tests/private/redis.py``) and, per failover round, a private Sentinel set
(``tests/private/redis_sentinel.py``: master, replica, 3 Sentinels).

* throughput: one separate ``taskiq worker bench.redis_cluster_app:broker --workers 1`` process
  (the kit's defaults: results in the same Redis) and ``--tasks`` kicks from this process, 100 in
  flight, until the worker counted them all; on the cluster and on the single server. One queue
  lives in one slot, so on one node of the cluster.
* failover (``--rounds`` times, with ``replica_acks`` 0 and 1): ``tests/redis/failover.py`` (an
  in-process worker; 10 coroutines kick, each pausing 20 ms after a kick; 2 s in, SIGKILL of the master). Counted:
  kicks acknowledged, refused (raised), lost (acknowledged, never run), duplicates, seconds to
  the promotion and to the first acknowledged kick sent after the kill (20 s of load from the
  kill), and from the end of the load until every acknowledged kick ran.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

from taskiq.kicker import AsyncKicker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.brokers  # noqa: E402, F401 - first: tests.redis imports it back
from bench.redis_cluster_app import done_key  # noqa: E402
from taskiq_kit import make_broker  # noqa: E402
from taskiq_kit.redis.connect import close_client, make_client  # noqa: E402
from tests.private.redis import private_redis  # noqa: E402
from tests.private.redis_cluster import private_redis_cluster  # noqa: E402
from tests.private.redis_sentinel import private_redis_sentinel  # noqa: E402
from tests.processes import taskiq_worker  # noqa: E402
from tests.redis.failover import failover_round  # noqa: E402


async def throughput(url: str, tasks: int) -> float:
    """End-to-end tasks/s through a separate worker process: kicks until the last one ran."""
    queue = f"kit-bench-{uuid.uuid4().hex[:8]}"
    env = {"KIT_BENCH_REDIS_URL": url, "KIT_BENCH_QUEUE": queue}
    broker = make_broker(url, queue_name=queue, result_options={"prefix": queue})
    counter = make_client(url)
    await broker.startup()
    try:
        with taskiq_worker("bench.redis_cluster_app:broker", "--workers", "1", env=env):
            noop: AsyncKicker[[int], int] = AsyncKicker("noop", broker, {})
            await noop.kiq(-1)
            deadline = time.monotonic() + 60
            while int(await counter.get(done_key(queue)) or 0) < 1:
                assert time.monotonic() < deadline, "the worker never consumed"
                await asyncio.sleep(0.05)
            started = time.monotonic()
            for first in range(0, tasks, 100):
                await asyncio.gather(*(noop.kiq(n) for n in range(first, min(tasks, first + 100))))
            deadline = time.monotonic() + 300
            while int(await counter.get(done_key(queue)) or 0) < tasks + 1:
                assert time.monotonic() < deadline, "not every task ran"
                await asyncio.sleep(0.02)
            return tasks / (time.monotonic() - started)
    finally:
        await broker.shutdown()
        await close_client(counter)


async def failover(replica_acks: int) -> str:
    """One failover round on a fresh Sentinel set; a line of figures."""
    with private_redis_sentinel() as sentinel:
        result = await failover_round(sentinel, replica_acks=replica_acks)
    back = "never" if result.kicks_back_after is None else f"{result.kicks_back_after:.1f} s"
    every = "never" if result.all_ran_after is None else f"{result.all_ran_after:.1f} s"
    return (
        f"replica_acks={replica_acks}: acknowledged {len(result.acknowledged)}, refused (raised) "
        f"{result.refused}, lost {len(result.lost)}, duplicates {result.duplicates}, promoted "
        f"after {result.promoted_after:.1f} s, kicks acknowledged again after {back}, every "
        f"acknowledged kick ran {every} after the load ended"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-throughput", action="store_true")
    options = parser.parse_args()
    if not options.skip_throughput:
        await throughputs(options.tasks)
    for round_number in range(options.rounds):
        for acks in (0, 1):
            print(f"failover round {round_number + 1}, {await failover(acks)}", flush=True)


async def throughputs(tasks: int) -> None:
    """Tasks/s on one server, then on the cluster."""
    with private_redis(appendonly=False) as single:
        rate = await throughput(single.url, tasks)
        print(f"single server: {rate:.0f} tasks/s ({tasks} tasks)", flush=True)
    with private_redis_cluster() as cluster:
        rate = await throughput(cluster.url, tasks)
        print(f"3-master cluster, one queue: {rate:.0f} tasks/s ({tasks} tasks)", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
