"""taskiq's ``broker.with_result_backend(...)`` on a kit broker: a kit backend is used, a foreign
one is refused where it is given, with what to do instead."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from taskiq.result_backends.dummy import DummyResultBackend

from taskiq_kit import TaskStatus, get_status, make_broker, make_result_backend
from taskiq_kit.exceptions import NotAKitBrokerError, NotAKitResultBackendError
from tests.abort.helpers import delete_redis_keys, redis_broker, running


async def test_kit_backend_given_by_taskiqs_idiom_keeps_results_and_status(
    redis_url: str, unique_name: Callable[[str], str]
) -> None:
    store_prefix = unique_name("store")
    backend = make_result_backend(redis_url, prefix=store_prefix)
    try:
        async with redis_broker(redis_url, unique_name("p"), unique_name("q")) as broker:
            assert broker.with_result_backend(backend) is broker
            assert broker.result_backend is backend

            @broker.task(task_name=unique_name("add"))
            async def add(a: int, b: int) -> int:
                return a + b

            async with running(broker):
                handle = await add.kiq(2, 3)
                result = await handle.wait_result(timeout=10, check_interval=0.02)
                assert result.return_value == 5
                assert await get_status(broker, handle.task_id) is TaskStatus.SUCCESS
            async with Redis.from_url(redis_url) as client:
                assert await client.exists(f"{store_prefix}:{{{handle.task_id}}}:result") == 1
    finally:
        await delete_redis_keys(redis_url, store_prefix)


def test_foreign_backend_is_refused_where_it_is_given() -> None:
    broker = make_broker("memory://")
    kept = broker.result_backend
    with pytest.raises(NotAKitResultBackendError, match="result_url=") as caught:
        broker.with_result_backend(DummyResultBackend())
    assert isinstance(caught.value, TypeError)
    assert "DummyResultBackend is not a taskiq-kit result backend" in str(caught.value)
    assert "make_result_backend" in str(caught.value)
    assert broker.result_backend is kept


async def test_foreign_backend_set_directly_is_named_at_kick(
    unique_name: Callable[[str], str],
) -> None:
    broker = make_broker("memory://")

    @broker.task(task_name=unique_name("noop"))
    async def noop() -> None:
        return None

    broker.result_backend = DummyResultBackend()
    with pytest.raises(NotAKitResultBackendError, match="result_url=") as caught:
        await noop.kiq()
    assert not isinstance(caught.value, NotAKitBrokerError)  # not "use make_broker": it was
