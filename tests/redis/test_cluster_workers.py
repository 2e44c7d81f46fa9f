"""Real ``taskiq worker`` processes on a private 3-master Redis Cluster: a killed worker's tasks run
on a live one (the heartbeat sweep's script on the queue's slot), as on one server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from taskiq_kit.redis.connect import RedisClient, close_client, make_client
from tests.private.redis_cluster import PrivateRedisCluster
from tests.redis.test_dead_worker import (
    test_killed_workers_tasks_run_on_a_live_worker_within_seconds,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

__all__ = ["test_killed_workers_tasks_run_on_a_live_worker_within_seconds"]


@pytest.fixture
def worker_url(redis_cluster: PrivateRedisCluster) -> str:
    return redis_cluster.url


@pytest.fixture
def queue(unique_name: Callable[[str], str]) -> str:
    """A fresh queue (the private cluster goes away with the session: nothing to delete)."""
    return unique_name("rq")


@pytest.fixture
async def redis(worker_url: str) -> AsyncIterator[RedisClient]:
    client = make_client(worker_url)
    yield client
    await close_client(client)
