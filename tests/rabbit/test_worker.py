"""``taskiq worker`` subprocesses on the real RabbitMQ: SIGKILL, SIGTERM and a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from taskiq.exceptions import SendTaskError

from taskiq_kit import BrokerNotAvailableError, make_broker
from taskiq_kit.rabbit import RabbitBroker
from tests.rabbit.harness import AMQP_URL, delete_topology, wait_until

pytestmark = [pytest.mark.rabbit, pytest.mark.slow, pytest.mark.usefixtures("amqp_url")]

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))


class Workers:
    """Starts ``taskiq worker`` process groups and reads what their tasks recorded."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.env = env
        self.out = out
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [TASKIQ, "worker", "tests.rabbit.worker_app:broker", "--workers", "1", *args],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # its own process group: the worker and its child
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.running.append(process)
        return process

    def signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def recorded(self) -> Counter[int]:
        if not self.out.exists():
            return Counter()
        return Counter(int(line) for line in self.out.read_text().split())


@pytest.fixture
async def workers(tmp_path: Path, unique_name: Callable[[str], str]) -> AsyncIterator[Workers]:
    env = dict(os.environ)
    env.update(
        KIT_TEST_AMQP_URL=AMQP_URL,
        KIT_TEST_EXCHANGE=unique_name("wx"),
        KIT_TEST_QUEUE=unique_name("wq"),
        KIT_TEST_OUT=str(tmp_path / "ran.txt"),
    )
    running = Workers(env, tmp_path / "ran.txt")
    try:
        yield running
    finally:
        # Workers first: a live worker would declare its queue again after the cleanup.
        for process in running.running:
            running.signal(process, signal.SIGKILL)
            process.wait(10)
        await delete_topology(_broker(env))


def _broker(env: dict[str, str]) -> RabbitBroker:
    broker = make_broker(
        AMQP_URL,
        exchange=env["KIT_TEST_EXCHANGE"],
        queue_name=env["KIT_TEST_QUEUE"],
        delay_mode="ladder",
    )
    assert isinstance(broker, RabbitBroker)
    return broker


@contextlib.asynccontextmanager
async def client(workers: Workers) -> AsyncIterator[RabbitBroker]:
    broker = _broker(workers.env)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()


async def kick(broker: RabbitBroker, n: int, seconds: float = 0.0) -> None:
    record = broker.find_task("record") or broker.register_task(_record, task_name="record")
    await record.kiq(n, seconds)


async def _record(n: int, seconds: float = 0.0) -> None:
    raise AssertionError("runs in the worker subprocess only")


@pytest.mark.timeout(120)
async def test_sigkill_while_tasks_flow_loses_nothing(workers: Workers) -> None:
    async with client(workers) as broker:
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
    async with client(workers) as broker:
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


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.timeout(150)
async def test_worker_recovers_from_a_rabbitmq_restart_and_no_confirmed_kick_is_lost(
    workers: Workers,
) -> None:
    confirmed: list[int] = []
    failures: list[tuple[float, BaseException | None]] = []
    async with client(workers) as broker:
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
                await asyncio.to_thread(_rabbitmqctl, "stop_app")
                await asyncio.sleep(3)
            finally:
                await asyncio.to_thread(_rabbitmqctl, "start_app")
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
