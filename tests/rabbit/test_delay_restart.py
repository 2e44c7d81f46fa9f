"""Delayed tasks survive a RabbitMQ restart while they fall due (private node, worker process)."""

from __future__ import annotations

import asyncio
import time

import pytest

from taskiq_kit.rabbit import RabbitBroker
from tests.private.rabbit import PrivateRabbit
from tests.rabbit.harness import wait_until
from tests.rabbit.workers import Workers

pytestmark = [pytest.mark.rabbit, pytest.mark.slow]

TASKS = 1000


async def kick_at(broker: RabbitBroker, n: int, due_at: float) -> None:
    task = broker.find_task("record_at") or broker.register_task(_record_at, task_name="record_at")
    await task.kicker().with_labels(eta=due_at).kiq(n, due_at)


async def _record_at(n: int, due_at: float) -> None:
    raise AssertionError("runs in the worker subprocess only")


@pytest.mark.timeout(180)
async def test_delayed_tasks_falling_due_while_rabbitmq_restarts_all_run_none_early(
    private_workers: Workers, private_rabbit: PrivateRabbit
) -> None:
    """1,000 tasks due 5 to 20 s ahead; the app is down about 6 s while many fall due."""
    workers = private_workers
    workers.start()
    async with workers.client() as broker:
        start = time.time()
        due = {n: start + 5 + 15 * n / TASKS for n in range(TASKS)}
        for first in range(0, TASKS, 100):
            await asyncio.gather(*(kick_at(broker, n, due[n]) for n in range(first, first + 100)))
        assert time.time() - start < 4, "kicking took too long: the restart would miss the ladder"
        # Down from about 6 s to 12 s after the first kick: tasks fall due before, during and after.
        await asyncio.sleep(max(0.0, start + 6 - time.time()))
        try:
            await asyncio.to_thread(private_rabbit.stop_app)
            ran_before = len(workers.recorded())
            await asyncio.sleep(max(0.0, start + 12 - time.time()))
        finally:
            await asyncio.to_thread(private_rabbit.start_app)
        assert 0 < ran_before < TASKS / 2, f"{ran_before} ran before the restart: not a fair test"
        done = await wait_until(lambda: len(workers.recorded()) == TASKS, 90, step=0.5)
        recorded = workers.recorded()
        missing = sorted(set(range(TASKS)) - set(recorded))
        assert done, f"{len(missing)} of {TASKS} delayed tasks never ran, e.g. {missing[:10]}"
        early = {int(n): float(late) for n, late in workers.lines() if float(late) < 0}
        assert not early, f"tasks ran early: {early}"
