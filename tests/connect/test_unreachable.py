"""A server that is down, or refuses the URL, fails start-up (and kicks) with the kit's errors.

"Down" is a closed port on 127.0.0.1, or a forwarder the test cuts; refusals use a database,
virtual host or user the shared servers do not have. The shared servers are never stopped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

from taskiq_kit import make_broker
from taskiq_kit.base import KitBroker
from taskiq_kit.exceptions import (
    AccessRefusedError,
    BrokerNotAvailableError,
    ResultStoreNotAvailableError,
)
from taskiq_kit.rabbit import RabbitBroker
from tests.connect.proxy import cuttable
from tests.private.redis import free_port
from tests.rabbit.harness import delete_topology

#: A password with every character a URL parser can trip on, percent-encoded as it must be.
SECRET = "Zx9-se/cr?et#@"
ENCODED = "Zx9-se%2Fcr%3Fet%23%40"


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _assert_safe(exc: BaseException, shown: str) -> None:
    """The error names the server (``shown``) and never the password, raw or encoded."""
    for text in (str(exc), repr(exc)):
        assert shown in text
        for secret in (SECRET, ENCODED, "Zx9-se"):
            assert secret not in text


@asynccontextmanager
async def started(broker: KitBroker) -> AsyncIterator[KitBroker]:
    try:
        await broker.startup()
        yield broker
    finally:
        await broker.shutdown()


async def _startup_error(broker: KitBroker) -> BaseException:
    try:
        await broker.startup()
    except Exception as exc:
        return exc
    finally:
        await broker.shutdown()
    pytest.fail(f"{broker!r} started against a server that is down")


# Start-up against a closed port: every transport and store.

PATHS = {"redis": "0", "amqp": "", "postgresql": "test"}


@pytest.mark.parametrize(
    ("scheme", "store", "error"),
    [
        ("redis", None, BrokerNotAvailableError),
        ("amqp", None, BrokerNotAvailableError),
        ("memory", "redis", ResultStoreNotAvailableError),
        ("memory", "postgresql", ResultStoreNotAvailableError),
    ],
)
async def test_startup_against_a_closed_port_fails_naming_the_url(
    scheme: str, store: str | None, error: type[Exception]
) -> None:
    port = free_port()
    server = store or scheme
    down = f"{server}://kit:{ENCODED}@127.0.0.1:{port}/{PATHS[server]}"
    url = down if store is None else f"{scheme}://"
    broker = make_broker(url, result_url=None if store is None else down, connect_timeout=2)
    exc = await _startup_error(broker)
    assert type(exc) is error
    _assert_safe(exc, f"kit:***@127.0.0.1:{port}")


@pytest.mark.rabbit
@pytest.mark.redis
async def test_a_store_that_is_down_fails_startup_before_any_listener_starts(
    amqp_url: str, caplog: pytest.LogCaptureFixture, unique_name: Callable[[str], str]
) -> None:
    caplog.set_level(logging.WARNING, logger="taskiq_kit")
    port = free_port()
    broker = make_broker(
        amqp_url,
        result_url=f"redis://127.0.0.1:{port}/0",
        exchange=unique_name("x"),
        queue_name=unique_name("q"),
        delay_mode="ladder",
    )
    assert isinstance(broker, RabbitBroker)
    try:
        exc = await _startup_error(broker)
    finally:
        await delete_topology(broker)
    assert isinstance(exc, ResultStoreNotAvailableError)
    _assert_safe(exc, f"Redis result store at redis://127.0.0.1:{port}/0")
    # No abort listener ran (and retried) against the dead store before start-up failed.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("taskiq_kit")] == []


# Servers that answer but refuse the URL.


@pytest.mark.redis
async def test_a_redis_database_the_server_does_not_have_is_refused(redis_url: str) -> None:
    host, port = _host_port(redis_url)
    exc = await _startup_error(make_broker(f"redis://{host}:{port}/999"))
    assert isinstance(exc, AccessRefusedError)
    assert "DB index is out of range" in str(exc)
    _assert_safe(exc, f"redis://{host}:{port}/999")


@pytest.mark.rabbit
async def test_an_unknown_vhost_says_so(amqp_url: str) -> None:
    host, port = _host_port(amqp_url)
    vhost = f"kit-missing-{uuid.uuid4().hex[:8]}"
    exc = await _startup_error(make_broker(f"amqp://guest:guest@{host}:{port}/{vhost}"))
    assert isinstance(exc, AccessRefusedError)
    assert f"virtual host {vhost!r} does not exist" in str(exc)
    assert "rabbitmqctl add_vhost" in str(exc)
    _assert_safe(exc, f"amqp://guest:***@{host}:{port}/{vhost}")


@pytest.mark.rabbit
async def test_bad_rabbitmq_credentials_say_so(amqp_url: str) -> None:
    host, port = _host_port(amqp_url)
    exc = await _startup_error(make_broker(f"amqp://guest:{ENCODED}@{host}:{port}/"))
    assert isinstance(exc, AccessRefusedError)
    assert "login refused for user 'guest'" in str(exc)
    _assert_safe(exc, f"amqp://guest:***@{host}:{port}/")


@pytest.mark.postgres
@pytest.mark.parametrize("what", ["database", "role"])
async def test_postgres_refusals_say_what_is_wrong(postgres_url: str, what: str) -> None:
    host, port = _host_port(postgres_url)
    missing = f"kit_missing_{uuid.uuid4().hex[:8]}"
    store = (
        f"postgresql://{host}:{port}/{missing}"
        if what == "database"
        else f"postgresql://{missing}:{ENCODED}@{host}:{port}/test"
    )
    exc = await _startup_error(make_broker("memory://", result_url=store))
    assert isinstance(exc, AccessRefusedError)
    assert f'{what} "{missing}" does not exist' in str(exc)
    userinfo = "" if what == "database" else f"{missing}:***@"
    _assert_safe(exc, f"PostgreSQL result store at postgresql://{userinfo}{host}:{port}")


# Servers that go down after start-up: the kick fails with the kit's error.


@pytest.mark.redis
async def test_a_kick_while_redis_is_down_raises_broker_not_available(
    redis_url: str, unique_name: Callable[[str], str]
) -> None:
    host, port = _host_port(redis_url)
    async with cuttable(host, port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        broker = make_broker(url, queue_name=unique_name("q"), connect_timeout=1)
        task = broker.register_task(lambda: None, task_name=unique_name("t"))
        async with started(broker):
            await proxy.cut()
            with pytest.raises(BrokerNotAvailableError) as caught:
                await task.kiq()
    _assert_safe(caught.value, f"redis://127.0.0.1:{proxy.port}/0")


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_kick_while_the_postgres_store_is_down_raises_the_store_error(
    redis_url: str, postgres_url: str, unique_name: Callable[[str], str]
) -> None:
    host, port = _host_port(postgres_url)
    database = urlsplit(postgres_url).path
    table = unique_name("tbl").replace("-", "_")
    async with cuttable(host, port) as proxy:
        store = f"postgresql://127.0.0.1:{proxy.port}{database}"
        broker = make_broker(
            redis_url,
            result_url=store,
            result_options={"table": table, "min_pool_size": 1, "purge_interval": None},
            queue_name=unique_name("q"),
            connect_timeout=1,
        )
        task = broker.register_task(lambda: None, task_name=unique_name("t"))
        async with started(broker):
            try:
                await proxy.cut()
                with pytest.raises(ResultStoreNotAvailableError) as caught:
                    await task.kiq()
            finally:
                await _drop_table(postgres_url, table)
    _assert_safe(caught.value, f"PostgreSQL result store at {store}")


async def _drop_table(postgres_url: str, table: str) -> None:
    import asyncpg  # noqa: PLC0415 - only the postgres tests need it

    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        await conn.close()
