"""The broker and abort contracts on a private 3-master Redis Cluster and on a Sentinel set.

The brokers come from ``make_broker`` with the cluster's (or the Sentinels') URL, so the result
store, the abort signal (sharded pub/sub on the cluster) and the broker all run there: every
script must keep to one slot, or the cluster refuses it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from taskiq_kit import make_broker
from taskiq_kit.redis import RedisBroker
from taskiq_kit.redis.connect import close_client, make_client
from taskiq_kit.results.redis import RedisResultBackend
from tests.brokers import BrokerHarness, in_process_worker
from tests.contract import test_abort_contract, test_broker_contract
from tests.private.redis_cluster import PrivateRedisCluster
from tests.private.redis_sentinel import PrivateRedisSentinel
from tests.redis.harness import read_dead_letters

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(120)]

Case = Callable[[BrokerHarness], Awaitable[None]]


def _cases(*modules: Any) -> list[Case]:
    """Every contract test of ``modules`` that takes the harness alone."""
    found = []
    for module in modules:
        for name, function in vars(module).items():
            if (
                name.startswith("test_")
                and inspect.iscoroutinefunction(function)
                and list(inspect.signature(function).parameters) == ["harness"]
            ):
                found.append(function)
    return found


CASES = _cases(test_broker_contract, test_abort_contract)
IDS = [case.__name__.removeprefix("test_") for case in CASES]


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


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_contract_on_the_cluster(cluster_harness: BrokerHarness, case: Case) -> None:
    await case(cluster_harness)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_contract_behind_sentinels(sentinel_harness: BrokerHarness, case: Case) -> None:
    await case(sentinel_harness)
