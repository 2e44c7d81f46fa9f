"""The broker contract's core on a private 3-node RabbitMQ cluster, through a multi-host URL.

Every queue of the kit (task queues, the delay ladder, dead letters) is a quorum queue, so each
must have a member on every node of the cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest

from taskiq_kit import make_broker
from taskiq_kit.rabbit import RabbitBroker
from tests.brokers import BrokerHarness, in_process_worker
from tests.contract import test_broker_contract as contract
from tests.private.rabbit_cluster import PrivateRabbitCluster
from tests.rabbit.harness import drain

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(180)]

#: The contract's kick, delay, status and dead-letter cases.
CORE: list[Callable[[BrokerHarness], Awaitable[None]]] = [
    contract.test_task_runs_and_records_success,
    contract.test_failure_is_recorded_with_error_details,
    contract.test_delayed_task_never_runs_early,
    contract.test_short_delay_is_not_blocked_by_a_long_one,
    contract.test_expired_task_does_not_run,
    contract.test_unknown_task_goes_to_dead_letters,
    contract.test_unknown_id_raises_not_found,
]


@pytest.fixture
async def cluster_harness(
    rabbit_cluster: PrivateRabbitCluster, unique_name: Callable[[str], str]
) -> AsyncIterator[BrokerHarness]:
    """A started broker on the cluster's multi-host URL, consumed in this process."""
    broker = make_broker(rabbit_cluster.url, exchange=unique_name("x"), queue_name=unique_name("q"))
    assert isinstance(broker, RabbitBroker)
    seen: list[tuple[bytes, str]] = []
    admin = await aio_pika.connect(rabbit_cluster.nodes[1].url)
    channel = await admin.channel()

    async def read_dead_letters() -> list[tuple[bytes, str]]:
        seen.extend(await drain(channel, broker.names.dead_letter))
        return list(seen)

    try:
        await broker.startup()
        try:
            async with in_process_worker(broker):
                yield BrokerHarness(
                    kind="rabbit", broker=broker, read_dead_letters=read_dead_letters
                )
        finally:
            await broker.shutdown()
    finally:
        await broker.topology.delete(channel)
        await admin.close()


@pytest.mark.parametrize("case", CORE, ids=[case.__name__.removeprefix("test_") for case in CORE])
async def test_contract_core_on_the_cluster(
    cluster_harness: BrokerHarness, case: Callable[[BrokerHarness], Awaitable[None]]
) -> None:
    await case(cluster_harness)


async def test_every_queue_of_the_kit_is_replicated_on_every_node(
    cluster_harness: BrokerHarness, rabbit_cluster: PrivateRabbitCluster
) -> None:
    broker = cluster_harness.broker
    assert isinstance(broker, RabbitBroker)
    names = broker.names
    ours = {names.default_queue, names.dead_letter}
    listed = rabbit_cluster.nodes[0].ctl(
        "list_queues", "name", "type", "members", "--no-table-headers"
    )
    members: dict[str, tuple[str, int]] = {}
    for line in listed.splitlines():
        name, kind, nodes = line.split("\t")
        members[name] = (kind, nodes.count("@"))
    ladder = [names.level(k) for k in range(broker.topology.levels)]
    for name in [*ours, *ladder]:
        assert members[name] == ("quorum", len(rabbit_cluster.nodes)), name
