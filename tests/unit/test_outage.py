"""The store guard rides out an outage: retries with back-off, one log line each way."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from taskiq_kit.results.outage import StoreGuard, is_outage


def test_outage_errors() -> None:
    assert is_outage(RedisConnectionError("refused"))
    assert is_outage(ConnectionRefusedError())
    assert is_outage(ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not is_outage(ResponseError("WRONGTYPE Operation against a key"))
    assert not is_outage(ValueError("a bug"))


async def test_the_guard_retries_and_logs_one_line_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskiq_kit.results")
    guard = StoreGuard("the store", first_pause=0.01, max_pause=0.02)
    down = True
    calls = 0

    async def read(value: int) -> int:
        nonlocal calls
        calls += 1
        if down:
            raise RedisConnectionError("Connection refused")
        return value

    readers = [asyncio.create_task(guard.call(read, n)) for n in range(20)]
    await asyncio.sleep(0.2)
    assert guard.down
    assert not any(reader.done() for reader in readers)
    down = False
    assert await asyncio.gather(*readers) == list(range(20))
    assert calls > 40
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "is unreachable" in lines[0][1]
    assert "is reachable again" in lines[1][1]


async def test_the_guard_raises_what_is_not_an_outage() -> None:
    guard = StoreGuard("the store")

    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await guard.call(broken)
    assert not guard.down


async def test_a_relapse_right_after_recovery_is_one_outage_unless_it_lasts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="taskiq_kit.results")
    clock = [100.0]
    monkeypatch.setattr("taskiq_kit.results.outage.time.monotonic", lambda: clock[0])
    guard = StoreGuard("the store")
    error = RedisConnectionError("Connection refused")
    guard.failed(error)
    clock[0] += 2
    guard.succeeded()
    # Stale pooled connections fail once each right after the restart: not a new outage.
    clock[0] += 0.1
    guard.failed(error)
    clock[0] += 0.01
    guard.succeeded()
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    # A failure that lasts is a new outage, announced once, and its end too.
    clock[0] += 0.5
    guard.failed(error)
    clock[0] += 1.5
    guard.failed(error)
    guard.failed(error)
    clock[0] += 1
    guard.succeeded()
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING", "INFO"]
