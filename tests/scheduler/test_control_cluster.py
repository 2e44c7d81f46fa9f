"""Operating schedules (list, pause, resume, run now) on a private Redis Cluster and behind Sentinels.

The tests of ``test_schedule_control`` are collected here again with ``redis_url`` pointing at the
cluster, then at the Sentinels: ``taskiq_kit.inspect.schedules`` builds its client with
``make_client`` like the replicas, and every key it touches carries the group's hash tag.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskiq_kit.redis.connect import RedisClient, close_client, make_client
from tests.scheduler.test_schedule_control import *  # noqa: F403 - the same tests, elsewhere

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture(params=["cluster", "sentinel"])
def redis_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"redis_{request.param}").url
    return url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[RedisClient]:
    client = make_client(redis_url)
    yield client
    await close_client(client)
