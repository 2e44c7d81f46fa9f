"""Sentinel failover under load: with ``replica_acks=1`` no acknowledged kick is lost.

Each test starts its own Sentinel set (1 master, 1 replica, 3 Sentinels) and SIGKILLs its master
under a steady load of kicks (see :mod:`tests.redis.failover`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.private.redis_sentinel import PrivateRedisSentinel, private_redis_sentinel
from tests.redis.failover import failover_round

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.timeout(120)]


@pytest.fixture
def fresh_sentinel() -> Iterator[PrivateRedisSentinel]:
    with private_redis_sentinel() as sentinel:
        yield sentinel


async def test_master_killed_under_load_loses_no_acknowledged_kick(
    fresh_sentinel: PrivateRedisSentinel,
) -> None:
    result = await failover_round(fresh_sentinel, replica_acks=1)
    assert len(result.acknowledged) > 100  # there was load before and after the kill
    assert result.lost == set(), f"{len(result.lost)} acknowledged kicks never ran"
    assert result.kicks_back_after is not None
    assert result.kicks_back_after < 30
    assert result.all_ran_after is not None
