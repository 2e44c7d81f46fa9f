"""The scheduler's lease, firing ledger and schedule store on a private 3-master Redis Cluster.

The tests of ``test_safety`` and ``test_scheduler`` are collected here again with ``redis_url``
pointing at the cluster: every key of a scheduler group shares the hash tag ``{<name>}``, so each
of its scripts and transactions must run on one slot, or the cluster refuses it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskiq_kit.redis.connect import RedisClient, close_client, make_client
from tests.private.redis_cluster import PrivateRedisCluster
from tests.scheduler.test_safety import *  # noqa: F403 - the same tests, on the cluster
from tests.scheduler.test_scheduler import *  # noqa: F403 - the same tests, on the cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def redis_url(redis_cluster: PrivateRedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    client = make_client(redis_url)
    yield client
    await close_client(client)
