"""Failover on a private 3-node RabbitMQ cluster: the node a worker and a client use stops.

A separate ``taskiq worker`` process and a client kicking continuously (with confirms) both
connect to node A first through the multi-host URL; node A's app stops under load. Every kick
that returned must run, delayed kicks waiting in the ladder included, and the same worker
process must consume again within 30 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest
from taskiq.kicker import AsyncKicker

from taskiq_kit.exceptions import BrokerNotAvailableError
from taskiq_kit.rabbit import RabbitBroker
from tests.private.rabbit_cluster import PrivateRabbitCluster
from tests.rabbit.harness import wait_until
from tests.rabbit.workers import Workers

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

#: Task numbers of the delayed kicks (the load's numbers count up from 0).
DELAYED_FROM = 1_000_000


class ClusterWorkers(Workers):
    """:class:`Workers` on a multi-host URL, cleaned up through one node that is up."""

    def __init__(self, url: str, admin_url: str, exchange: str, queue: str, out: Path) -> None:
        super().__init__(url, exchange, queue, out)
        self.admin_url = admin_url

    async def close(self) -> None:
        """Kill every worker, then delete the topology through ``admin_url``."""
        for process in self.running:
            self.signal(process, 9)
            process.wait(10)
        broker = self.broker()
        async with await aio_pika.connect(self.admin_url) as connection:
            await broker.topology.delete(await connection.channel())


def record(client: RabbitBroker, **labels: float) -> AsyncKicker[[int], None]:
    """A kicker of the worker app's ``record`` task."""
    return AsyncKicker("record", client, labels)


def children(pid: int) -> list[int]:
    """PIDs of the processes ``pid`` started (the taskiq worker's worker processes)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return sorted(int(child) for child in text.split())


@dataclass
class Load:
    """Kicks ``record(n)`` one after another; remembers which kicks were confirmed, and when."""

    client: RabbitBroker
    confirmed: dict[int, float] = field(default_factory=dict)
    refused: int = 0
    _next: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Kick until ``stop`` is set."""
        while not stop.is_set():
            n, self._next = self._next, self._next + 1
            try:
                await record(self.client).kiq(n)
            except BrokerNotAvailableError:
                self.refused += 1  # not confirmed in publish_timeout: the caller knows
            else:
                self.confirmed[n] = time.monotonic()
            await asyncio.sleep(0.002)


@pytest.fixture
async def cluster_workers(
    rabbit_cluster: PrivateRabbitCluster, tmp_path: Path, unique_name: Callable[[str], str]
) -> AsyncIterator[ClusterWorkers]:
    """Workers (and clients) on the cluster, node A (the first node) first in their URL."""
    running = ClusterWorkers(
        rabbit_cluster.url_from(0),
        rabbit_cluster.nodes[1].url,
        unique_name("wx"),
        unique_name("wq"),
        tmp_path / "ran.txt",
    )
    try:
        yield running
    finally:
        await running.close()


@pytest.mark.timeout(300)
async def test_stopping_the_node_of_a_worker_under_load_loses_no_confirmed_kick(
    rabbit_cluster: PrivateRabbitCluster, cluster_workers: ClusterWorkers
) -> None:
    node_a = rabbit_cluster.nodes[0]
    async with cluster_workers.client() as client:  # declares the topology on node A
        process = cluster_workers.start()
        await record(client).kiq(-1)
        assert await wait_until(lambda: -1 in cluster_workers.recorded(), 60), "never consumed"
        worker_pids = children(process.pid)
        assert worker_pids
        on_a = node_a.ctl("list_connections", "client_properties")
        assert "taskiq-kit consumer" in on_a, "the worker is not connected to node A"
        assert "taskiq-kit publisher" in on_a, "the client is not connected to node A"
        delayed = list(range(DELAYED_FROM, DELAYED_FROM + 20))
        for n in delayed:  # due while node A is down, waiting in the ladder's quorum queues
            await record(client, delay=4 + n % 4).kiq(n)

        load = Load(client)
        stop = asyncio.Event()
        kicking = asyncio.create_task(load.run(stop))
        try:
            await asyncio.sleep(2)
            stopped_at = time.monotonic()
            await asyncio.to_thread(node_a.stop_app)
            stop_returned = time.monotonic()
            after = max(load.confirmed, default=0)

            def consumed_again() -> bool:
                ran = cluster_workers.recorded()
                return any(n > after and n in ran for n in load.confirmed)

            assert await wait_until(consumed_again, 45, step=0.1), (
                "the worker did not consume again"
            )
            recovery = time.monotonic() - stopped_at
            await asyncio.sleep(2)  # some more load on the surviving nodes
        finally:
            stop.set()
            await kicking
        try:
            expected = set(load.confirmed) | set(delayed) | {-1}
            assert await wait_until(lambda: expected <= set(cluster_workers.recorded()), 60), (
                f"lost {len(expected - set(cluster_workers.recorded()))} confirmed kicks"
            )
            assert process.poll() is None
            assert children(process.pid) == worker_pids, "the worker process was restarted"
            assert recovery < 30, f"consumed again {recovery:.1f} s after the stop"
        finally:
            await asyncio.to_thread(node_a.start_app)
    ran = cluster_workers.recorded()
    print(
        f"\ncluster failover: {len(load.confirmed)} confirmed kicks, {load.refused} refused, "
        f"lost {len(expected - set(ran))}, duplicates {sum(c - 1 for c in ran.values())}, "
        f"stop_app took {stop_returned - stopped_at:.1f} s, "
        f"consumed again {recovery:.1f} s after the stop began"
    )
