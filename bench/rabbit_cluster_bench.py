"""A 3-node RabbitMQ cluster: tasks/s beside one node, and what stopping a worker's node costs.

How to run (by hand, not in CI; needs RabbitMQ installed, the shared server is not touched)::

    .venv/bin/python bench/rabbit_cluster_bench.py --tasks 5000 --rounds 3

The script starts a private 3-node cluster on free loopback ports (``tests/private/rabbit_cluster.py``)
and a private single node (``tests/private/rabbit.py``). Each measurement uses a uuid-named
topology, one separate ``taskiq worker --workers 1`` process (``tests/rabbit/worker_app.py``, the
kit's default configuration: quorum task queues, the TTL ladder) and a client in this process.

* throughput: ``--tasks`` kicks (100 in flight, confirmed), then the time until the worker ran
  them all; on the cluster (client and worker on the multi-host URL) and on the single node.
* failover (``--rounds`` times): the worker and a client kicking continuously both connect to
  node A first; 2 s into the load node A's app stops (``rabbitmqctl stop_app``). Counted: kicks
  confirmed, kicks lost (confirmed but never run), duplicates, seconds from the stop until a
  kick confirmed after it has run; node A is started again after each round.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.brokers  # noqa: E402, F401 - first: tests.rabbit.harness imports it back
from tests.private.rabbit import private_rabbit_node  # noqa: E402
from tests.private.rabbit_cluster import PrivateRabbitCluster, private_rabbit_cluster  # noqa: E402
from tests.rabbit.harness import wait_until  # noqa: E402
from tests.rabbit.test_cluster_failover import ClusterWorkers, Load, record  # noqa: E402


async def throughput(url: str, admin_url: str, tasks: int) -> float:
    """End-to-end tasks/s: ``tasks`` confirmed kicks until the last one ran."""
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as out:
        workers = ClusterWorkers(
            url, admin_url, f"bench-x-{run}", f"bench-q-{run}", Path(out) / "r"
        )
        try:
            async with workers.client() as client:
                workers.start()
                await record(client).kiq(-1)
                assert await wait_until(lambda: -1 in workers.recorded(), 60), "never consumed"
                started = time.monotonic()
                for first in range(0, tasks, 100):
                    await asyncio.gather(
                        *(record(client).kiq(n) for n in range(first, min(tasks, first + 100)))
                    )
                assert await wait_until(lambda: len(workers.recorded()) > tasks, 300, 0.02)
                return tasks / (time.monotonic() - started)
        finally:
            await workers.close()


async def failover(cluster: PrivateRabbitCluster) -> str:
    """One round: stop node A under load; a line of figures."""
    run = uuid.uuid4().hex[:8]
    node_a = cluster.nodes[0]
    with tempfile.TemporaryDirectory() as out:
        workers = ClusterWorkers(
            cluster.url_from(0), cluster.nodes[1].url, f"bench-x-{run}", f"bench-q-{run}",
            Path(out) / "r",
        )  # fmt: skip
        try:
            async with workers.client() as client:
                workers.start()
                await record(client).kiq(-1)
                assert await wait_until(lambda: -1 in workers.recorded(), 60), "never consumed"
                load, stop = Load(client), asyncio.Event()
                kicking = asyncio.create_task(load.run(stop))
                await asyncio.sleep(2)
                stopped_at = time.monotonic()
                await asyncio.to_thread(node_a.stop_app)
                after = max(load.confirmed, default=0)

                def again() -> bool:
                    ran = workers.recorded()
                    return any(n > after and n in ran for n in load.confirmed)

                await wait_until(again, 60, 0.05)
                recovery = time.monotonic() - stopped_at
                await asyncio.sleep(2)
                stop.set()
                await kicking
                await wait_until(lambda: set(load.confirmed) <= set(workers.recorded()), 60)
                ran = workers.recorded()
                lost = len(set(load.confirmed) - set(ran))
                dups = sum(count - 1 for count in ran.values())
                return (
                    f"confirmed {len(load.confirmed)}, not confirmed (raised) {load.refused}, "
                    f"lost {lost}, duplicates {dups}, consumed again after {recovery:.1f} s"
                )
        finally:
            await asyncio.to_thread(node_a.start_app)
            await workers.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with private_rabbit_cluster() as cluster:
        with private_rabbit_node() as node:
            one = await throughput(node.url, node.url, args.tasks)
        three = await throughput(cluster.url, cluster.nodes[1].url, args.tasks)
        print(f"tasks/s, one node: {one:.0f}; 3-node cluster: {three:.0f} ({three / one:.2f}x)")
        for n in range(args.rounds):
            print(f"failover round {n + 1}: {await failover(cluster)}")


if __name__ == "__main__":
    asyncio.run(main())
