"""Shared fixtures: real servers on loopback, uuid-named resources, brokers under test.

URLs come from the environment (``TASKIQ_KIT_TEST_AMQP_URL``, ``TASKIQ_KIT_TEST_REDIS_URL``,
``TASKIQ_KIT_TEST_POSTGRES_URL``) with loopback defaults. ``scripts/services.sh`` starts any
server that is down; a server still unreachable fails the tests that need it (never a skip).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from tests.brokers import BROKER_KINDS, BrokerHarness, make_harness
from tests.private.rabbit import PrivateRabbit, private_rabbit_node
from tests.private.redis_cluster import PrivateRedisCluster, private_redis_cluster
from tests.private.redis_sentinel import PrivateRedisSentinel, private_redis_sentinel

AMQP_URL = os.environ.get("TASKIQ_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TASKIQ_KIT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def _require_server(url: str, name: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    assert port is not None
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not reachable at {host}:{port} ({exc}); run scripts/services.sh")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    _require_server(AMQP_URL, "RabbitMQ")
    return AMQP_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    _require_server(REDIS_URL, "Redis")
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_url() -> str:
    _require_server(POSTGRES_URL, "PostgreSQL")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of this session's own, for fault tests (restarts, alarms, closed
    connections); started by the first test that asks for it, stopped at the end of the session.
    """
    with private_rabbit_node() as node:
        yield node


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Names for queues, keys and tables that no other test (or run) uses."""
    run = uuid.uuid4().hex[:10]

    def make(prefix: str = "t") -> str:
        return f"kit-test-{prefix}-{run}-{uuid.uuid4().hex[:6]}"

    return make


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    kind: str = request.param
    if kind == "rabbit":
        request.getfixturevalue("amqp_url")
    elif kind == "redis":
        request.getfixturevalue("redis_url")
    return kind


@pytest.fixture
async def harness(
    broker_kind: str, unique_name: Callable[[str], str]
) -> AsyncIterator[BrokerHarness]:
    """A started broker of each kind, with a worker consuming in this process; cleaned up after."""
    async with make_harness(broker_kind, unique_name) as running:
        yield running


# Redis Cluster and Sentinel harnesses (issue #20): private servers, started on first use.
@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[PrivateRedisCluster]:
    """A 3-master Redis Cluster of this session's own; started by the first test asking for it."""
    with private_redis_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[PrivateRedisSentinel]:
    """A Sentinel set (master, replica, 3 Sentinels) of this session's own, for tests that do not
    kill its servers (failover tests start their own).
    """
    with private_redis_sentinel() as sentinel:
        yield sentinel
