"""A replay resets the task record through the lifecycle: a crash-looping task starts afresh."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from taskiq_kit import MemoryBroker, TaskNotFoundError, TaskStatus, get_status, get_task_record
from taskiq_kit.inspect import list_dead_letters, replay_all_dead_letters
from tests.brokers import BROKER_KINDS
from tests.inspect.dead_letters_support import (
    eventually,
    figures,
    idle_broker,
    inject_dead_letter,
    task_body,
)


@pytest.mark.parametrize("kind", BROKER_KINDS)
async def test_replay_resets_a_crash_looping_record(
    kind: str, unique_name: Callable[[str], str]
) -> None:
    async with idle_broker(kind, unique_name) as built:
        broker = built.broker
        # Reads of an in-memory store are for the process running the tasks (the memory
        # broker runs them itself, and would leave them to a Receiver if it were a worker).
        broker.is_worker_process = not isinstance(broker, MemoryBroker)
        ran: list[str] = []

        @broker.task(task_name=f"crashy-{uuid.uuid4().hex}")
        async def crashy() -> None:
            ran.append("fixed")

        task_id = uuid.uuid4().hex
        message = task_body(broker, crashy.task_name, task_id)
        # Its record says it started five times and never finished (its worker kept dying).
        await broker.lifecycle.kicked(message)
        for run in range(1, 6):
            await broker.lifecycle.started(message, run=run)
        before = await get_task_record(broker, task_id)
        assert (before.status, before.runs) == (TaskStatus.STARTED, 5)
        reason = "started 5 times without finishing (limit 5); it may be crashing its worker"
        await inject_dead_letter(broker, message.message, reason)

        (dead,) = (await list_dead_letters(broker)).dead_letters
        assert dead.reason == reason
        assert dead.attempts == 5
        assert dead.task_id == task_id
        assert (await replay_all_dead_letters(broker)).replayed == 1

        if isinstance(broker, MemoryBroker):  # it runs the replayed task at once

            async def succeeded() -> bool:
                try:
                    return await get_status(broker, task_id) is TaskStatus.SUCCESS
                except TaskNotFoundError:
                    return False

            await eventually(succeeded, 10, "the replayed task to succeed")
            assert ran == ["fixed"]
        else:
            after = await get_task_record(broker, task_id)
            assert after.status is TaskStatus.PENDING
            assert after.runs == 0
            assert after.attempt == 1
            assert after.kicked_at is not None
            assert before.kicked_at is not None
            assert after.kicked_at > before.kicked_at
            counted = await figures(broker)
            assert (counted.ready, counted.dead_lettered) == (1, 0)
        broker.is_worker_process = False
