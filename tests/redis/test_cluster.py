"""The broker and abort contracts on a private 3-master Redis Cluster and on a Sentinel set.

The brokers come from ``make_broker`` with the cluster's (or the Sentinels') URL, so the result
store, the abort signal (sharded pub/sub on the cluster) and the broker all run there: every
script must keep to one slot, or the cluster refuses it.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from taskiq_kit import make_broker
from taskiq_kit.abort.signal import RedisAbortSignal
from taskiq_kit.inspect.models import TaskQuery
from taskiq_kit.redis import RedisBroker
from taskiq_kit.redis.connect import close_client, make_client
from taskiq_kit.results.record import TaskStatus
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.results.writes import FINAL, KICK, RUN, RecordWrite
from tests.brokers import BrokerHarness, in_process_worker
from tests.contract import test_abort_contract, test_broker_contract
from tests.inspect import test_dead_letters_api
from tests.private.redis_cluster import PrivateRedisCluster
from tests.private.redis_sentinel import PrivateRedisSentinel
from tests.redis.harness import read_dead_letters

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(120)]

Case = Callable[[BrokerHarness], Awaitable[None]]


def _cases(*modules: Any, parameter: str = "harness") -> list[Case]:
    """Every contract test of ``modules`` that takes the harness alone (as ``parameter``)."""
    found = []
    for module in modules:
        for name, function in vars(module).items():
            if (
                name.startswith("test_")
                and inspect.iscoroutinefunction(function)
                and list(inspect.signature(function).parameters) == [parameter]
            ):
                found.append(function)
    return found


CASES = _cases(test_broker_contract, test_abort_contract)
IDS = [case.__name__.removeprefix("test_") for case in CASES]
#: The dead-letter API's tests (list, replay, delete, with queue figures), on a started broker.
DEAD_LETTER_CASES = _cases(test_dead_letters_api, parameter="running")


async def _harness(
    url: str, names: Callable[[str], str], kind: str
) -> AsyncIterator[BrokerHarness]:
    broker = make_broker(
        url,
        queue_name=names("q"),
        idle_timeout=5.0,
        result_options={"prefix": names("r")},
    )
    assert isinstance(broker, RedisBroker)
    assert isinstance(broker.result_backend, RedisResultBackend)
    client = make_client(url)

    async def dead() -> list[tuple[bytes, str]]:
        return await read_dead_letters(client, broker.keys)

    try:
        await broker.startup()
        try:
            async with in_process_worker(broker):
                yield BrokerHarness(kind=kind, broker=broker, read_dead_letters=dead)
        finally:
            await broker.shutdown()
    finally:
        await close_client(client)


@pytest.fixture
async def cluster_harness(
    redis_cluster: PrivateRedisCluster, unique_name: Callable[[str], str]
) -> AsyncIterator[BrokerHarness]:
    async for harness in _harness(redis_cluster.url, unique_name, "redis-cluster"):
        yield harness


@pytest.fixture
async def sentinel_harness(
    redis_sentinel: PrivateRedisSentinel, unique_name: Callable[[str], str]
) -> AsyncIterator[BrokerHarness]:
    async for harness in _harness(redis_sentinel.url, unique_name, "redis-sentinel"):
        yield harness


@pytest.mark.parametrize(
    "case", DEAD_LETTER_CASES, ids=[c.__name__.removeprefix("test_") for c in DEAD_LETTER_CASES]
)
async def test_dead_letters_on_the_cluster(cluster_harness: BrokerHarness, case: Case) -> None:
    await case(cluster_harness)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_contract_on_the_cluster(cluster_harness: BrokerHarness, case: Case) -> None:
    await case(cluster_harness)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_contract_behind_sentinels(sentinel_harness: BrokerHarness, case: Case) -> None:
    await case(sentinel_harness)


async def test_a_batch_of_writes_spanning_every_node_keeps_its_order(
    redis_cluster: PrivateRedisCluster, unique_name: Callable[[str], str]
) -> None:
    """One write_records call over 200 tasks (slots on all 3 masters): outcomes in call order."""
    backend: RedisResultBackend[Any] = RedisResultBackend(
        redis_cluster.url, prefix=unique_name("r"), result_ttl=60
    )
    await backend.startup()
    try:
        ids = [uuid.uuid4().hex for _ in range(200)]
        nodes = {backend.redis.get_node_from_key(backend.keys.status(i)).name for i in ids}
        assert len(nodes) == 3
        kicks = [RecordWrite(i, KICK, {"status": "pending"}, 1.0, 0) for i in ids]
        assert all(outcome.applied for outcome in await backend.write_records(kicks))
        # Every other task finishes; a run of the same attempt is then refused for those.
        finals = [
            RecordWrite(i, FINAL, {"status": "success"}, 1.0, 0, result=b'"x"') for i in ids[::2]
        ]
        await backend.write_records(finals)
        # Every node forgets the script (as after a restart): the next batch loads it again.
        await backend.redis.script_flush()
        again = await backend.write_records(
            [RecordWrite(i, RUN, {"status": "started"}, 1.0, 0) for i in ids]
        )
        assert [o.status for o in again] == [
            "success" if n % 2 == 0 else "started" for n in range(len(ids))
        ]
        # The task index followed on its own slot (each batch's second call).
        counts = await backend.count_tasks(TaskQuery())
        assert (counts[TaskStatus.SUCCESS], counts[TaskStatus.STARTED]) == (100, 100)
        assert counts[TaskStatus.PENDING] == 0
        page = await backend.list_tasks(
            TaskQuery(statuses=frozenset({TaskStatus.STARTED})), limit=500, cursor=None
        )
        assert sorted(r.task_id for r in page.tasks) == sorted(ids[1::2])
    finally:
        await backend.shutdown()


async def test_abort_signal_uses_a_sharded_channel_on_the_cluster(
    redis_cluster: PrivateRedisCluster, unique_name: Callable[[str], str]
) -> None:
    signal = RedisAbortSignal(redis_cluster.url, scope=unique_name("scope"))
    heard: list[str] = []
    got = asyncio.Event()

    def on_abort(task_id: str) -> None:
        heard.append(task_id)
        got.set()

    await signal.listen(on_abort)
    try:
        client = make_client(redis_cluster.url, decode_responses=True)
        try:
            await client.initialize()
            node = client.get_node_from_key(signal.channel)
            shard_channels = await client.execute_command(
                "PUBSUB", "SHARDCHANNELS", target_nodes=node
            )
            assert signal.channel in shard_channels
        finally:
            await close_client(client)
        await signal.publish("task-1")
        await asyncio.wait_for(got.wait(), 5)
        assert heard == ["task-1"]
    finally:
        await signal.shutdown()
