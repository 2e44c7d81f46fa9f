"""``taskiq worker`` subprocesses on the real RabbitMQ: SIGKILL, SIGTERM and a server restart."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from taskiq.exceptions import SendTaskError

from taskiq_kit import BrokerNotAvailableError
from taskiq_kit.rabbit import RabbitBroker
from tests.private.rabbit import PrivateRabbit
from tests.rabbit.harness import wait_until
from tests.rabbit.workers import Workers

pytestmark = [pytest.mark.rabbit, pytest.mark.slow]


@pytest.fixture
async def workers(
    tmp_path: Path, unique_name: Callable[[str], str], amqp_url: str
) -> AsyncIterator[Workers]:
    """Worker processes on the shared RabbitMQ (nothing here touches the server itself)."""
    running = Workers(amqp_url, unique_name("wx"), unique_name("wq"), tmp_path / "ran.txt")
    try:
        yield running
    finally:
        await running.close()


async def kick(broker: RabbitBroker, n: int, seconds: float = 0.0) -> None:
    record = broker.find_task("record") or broker.register_task(_record, task_name="record")
    await record.kiq(n, seconds)


async def _record(n: int, seconds: float = 0.0) -> None:
    raise AssertionError("runs in the worker subprocess only")


@pytest.mark.timeout(120)
async def test_sigkill_while_tasks_flow_loses_nothing(workers: Workers) -> None:
    async with workers.client() as broker:
        first = workers.start()
        for start in range(0, 1000, 100):
            await asyncio.gather(*(kick(broker, n, 0.01) for n in range(start, start + 100)))
        assert await wait_until(lambda: sum(workers.recorded().values()) >= 200, 30)
        workers.signal(first, signal.SIGKILL)
        first.wait(10)
        killed_at = sum(workers.recorded().values())
        assert killed_at < 1000, "every task ran before the kill: the test proves nothing"
        workers.start()
        assert await wait_until(lambda: len(workers.recorded()) == 1000, 60, step=0.2)
        recorded = workers.recorded()
        assert set(recorded) == set(range(1000))
        # Re-runs after a crash are bounded by the prefetch of the killed worker.
        assert sum(recorded.values()) - 1000 <= broker.consumer.prefetch_count


@pytest.mark.timeout(90)
async def test_sigterm_finishes_running_tasks_and_returns_prefetched_ones(
    workers: Workers,
) -> None:
    async with workers.client() as broker:
        worker = workers.start("--max-async-tasks", "2", "--wait-tasks-timeout", "10")
        await asyncio.gather(*(kick(broker, n, 1.0) for n in range(12)))
        assert await wait_until(lambda: len(workers.recorded()) >= 2, 30)
        workers.signal(worker, signal.SIGTERM)
        assert worker.wait(20) == 0
        # Tasks running at SIGTERM finished; the prefetched rest went back to the queue.
        assert 2 <= len(workers.recorded()) < 12
        workers.start()
        assert await wait_until(lambda: len(workers.recorded()) == 12, 40, step=0.2)
        recorded = workers.recorded()
        assert set(recorded) == set(range(12))
        assert max(recorded.values()) == 1, f"tasks ran twice: {recorded}"


@pytest.mark.timeout(150)
async def test_worker_recovers_from_a_rabbitmq_restart_and_no_confirmed_kick_is_lost(
    private_workers: Workers, private_rabbit: PrivateRabbit
) -> None:
    workers = private_workers
    confirmed: list[int] = []
    failures: list[tuple[float, BaseException | None]] = []
    async with workers.client() as broker:
        workers.start()
        stop = asyncio.Event()

        async def load() -> None:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await kick(broker, n)
                except SendTaskError as exc:
                    failures.append((time.monotonic() - started, exc))
                else:
                    confirmed.append(n)
                n += 1
                await asyncio.sleep(0.005)

        loader = asyncio.create_task(load())
        try:
            assert await wait_until(lambda: len(workers.recorded()) >= 100, 30)
            try:
                await asyncio.to_thread(private_rabbit.stop_app)
                await asyncio.sleep(3)
            finally:
                await asyncio.to_thread(private_rabbit.start_app)
            restarted = time.monotonic()
            before = len(confirmed)
            assert await wait_until(lambda: len(confirmed) >= before + 200, 30)
        finally:
            stop.set()
            await loader
        # Kicks during the outage failed typed, within the publish timeout: none hung.
        timeout = broker.publisher.publish_timeout
        for took, cause in failures:
            assert isinstance(cause, BrokerNotAvailableError), cause
            assert took < timeout + 1.5
        # The worker resumed by itself and ran every confirmed kick, within 30 s.
        assert await wait_until(lambda: set(confirmed) <= set(workers.recorded()), 30, step=0.2)
        assert time.monotonic() - restarted < 60
