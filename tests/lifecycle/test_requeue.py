"""taskiq's ``Context.requeue()``: the same run sent again goes back to pending and runs again."""

from __future__ import annotations

import uuid

from taskiq import Context, TaskiqDepends

from taskiq_kit import TaskStatus, get_task_record
from tests.brokers import BrokerHarness
from tests.contract.test_broker_contract import wait_for_status


async def test_a_requeued_task_runs_again(harness: BrokerHarness) -> None:
    runs: list[int] = []

    @harness.broker.task(task_name=f"again-{uuid.uuid4().hex}")
    async def again(context: Context = TaskiqDepends()) -> int:
        runs.append(len(runs))
        if len(runs) == 1:
            await context.requeue()
        return len(runs)

    task = await again.kiq()
    result = await task.wait_result(timeout=15, check_interval=0.02)
    assert result.return_value == 2
    await wait_for_status(harness, task.task_id, TaskStatus.SUCCESS)
    record = await get_task_record(harness.broker, task.task_id)
    assert (record.attempt, record.requeues) == (1, 1)
    assert runs == [0, 1]
