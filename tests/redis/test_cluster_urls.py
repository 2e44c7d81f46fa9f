"""Redis Cluster and Sentinel URLs: parsed, checked and turned into clients without connecting."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from taskiq_kit import make_broker
from taskiq_kit.exceptions import InvalidURLError, RedisSettingError
from taskiq_kit.redis import RedisBroker
from taskiq_kit.redis.connect import close_client, make_client, topology
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.urls import redact


def test_cluster_url_lists_its_nodes() -> None:
    where = topology("redis+cluster://user:secret@h1:7000,h2:7001,h3/")
    assert where.kind == "cluster"
    assert where.nodes == (("h1", 7000), ("h2", 7001), ("h3", 6379))
    assert where.server_url == "redis://user:secret@h1:7000/0"


def test_sentinel_url_names_service_and_database() -> None:
    where = topology("rediss+sentinel://:pw@s1:26380,s2/my-master/3?socket_timeout=2")
    assert where.kind == "sentinel"
    assert where.nodes == (("s1", 26380), ("s2", 26379))
    assert where.service == "my-master"
    assert where.server_url == "rediss://:pw@s1:26380/3?socket_timeout=2"


def test_plain_url_is_one_server() -> None:
    assert topology("redis://h:6380/2").kind == "server"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://h1:7000,h2:7001/3", "database 0 only"),
        ("redis+sentinel://s1:26379,s2:26379/", "service"),
        ("redis+sentinel://s1:26379,:26379/svc", "host 2 of 2"),
        ("redis+cluster://h1:7000,h2:70x1/", "port"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(InvalidURLError, match=reason):
        make_broker(url)


def test_password_is_masked_in_multi_host_urls() -> None:
    shown = redact("redis+sentinel://:hunter2@s1:26379,s2:26379/svc/0")
    assert "hunter2" not in shown


async def test_make_client_builds_the_right_client_without_connecting() -> None:
    cluster = make_client("redis+cluster://127.0.0.1:1,127.0.0.1:2/")
    sentinel = make_client("redis+sentinel://127.0.0.1:1,127.0.0.1:2/svc/4")
    try:
        assert isinstance(cluster, RedisCluster)
        assert isinstance(sentinel, Redis)
        pool = sentinel.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "svc"
        assert pool.connection_kwargs["db"] == 4
    finally:
        await close_client(cluster)
        await close_client(sentinel)


def test_make_broker_takes_cluster_and_sentinel_urls() -> None:
    for url in ("redis+cluster://h1:7000,h2:7001/", "redis+sentinel://s1,s2,s3/svc/0"):
        broker = make_broker(url, queue_name="q")
        assert isinstance(broker, RedisBroker)
        assert isinstance(broker.result_backend, RedisResultBackend)
        assert broker.result_backend.url == url


def test_replica_acks_is_refused_on_a_cluster() -> None:
    with pytest.raises(RedisSettingError, match="replica_acks"):
        make_broker("redis+cluster://h1:7000/", replica_acks=1)
    broker = make_broker("redis+sentinel://s1/svc/0", replica_acks=1)
    assert isinstance(broker, RedisBroker)
    assert broker.replica_acks is not None
