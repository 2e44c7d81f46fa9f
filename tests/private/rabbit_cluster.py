"""A private 3-node RabbitMQ cluster on free loopback ports, that tests may break.

Three :class:`~tests.private.rabbit.PrivateRabbit` nodes (own node names, AMQP and distribution
ports, data dirs) share one Erlang cookie; they boot in parallel, then nodes 2 and 3 join node 1
(``stop_app``, ``join_cluster``, ``start_app``). Each node's watchdog removes it should the test
session die without cleaning up.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from tests.private.rabbit import PrivateRabbit


class PrivateRabbitCluster:
    """Three clustered RabbitMQ nodes owned by the test session.

    Args:
        size: how many nodes.
        start_timeout: seconds each node may take to boot.

    """

    def __init__(self, *, size: int = 3, start_timeout: float = 120.0) -> None:
        cookie = secrets.token_hex(16).upper()
        self.nodes = [
            PrivateRabbit(start_timeout=start_timeout, cookie=cookie) for _ in range(size)
        ]

    @property
    def url(self) -> str:
        """The multi-host URL: ``amqp://guest:guest@127.0.0.1:<p1>,127.0.0.1:<p2>,.../``."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"amqp://guest:guest@{hosts}/"

    def url_from(self, first: int) -> str:
        """The multi-host URL listing node ``first`` first (a client connects there first)."""
        order = self.nodes[first:] + self.nodes[:first]
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in order)
        return f"amqp://guest:guest@{hosts}/"

    def start(self) -> None:
        """Boot every node (in parallel), then join nodes 2.. to node 1.

        Raises:
            RuntimeError: when a node does not start or join.

        """
        for node in self.nodes:
            node.launch()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.wait_started(), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.start_app()
        members = first.ctl("eval", "length(rabbit_nodes:all_running()).").strip()
        if members != str(len(self.nodes)):
            raise RuntimeError(f"the private RabbitMQ cluster has {members} running nodes")

    def close(self) -> None:
        """Stop every node and remove its data."""
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.close(), self.nodes))


@contextlib.contextmanager
def private_rabbit_cluster() -> Iterator[PrivateRabbitCluster]:
    """A started :class:`PrivateRabbitCluster`, stopped and removed when the block ends."""
    cluster = PrivateRabbitCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
