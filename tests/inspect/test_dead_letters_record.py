"""A replay resets the task record through the lifecycle: a crash-looping task starts afresh."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from taskiq_kit import MemoryBroker, TaskNotFoundError, TaskStatus, get_status, get_task_record
from taskiq_kit.exceptions import DeadLetterNotFoundError
from taskiq_kit.inspect import (
    ReplayReport,
    list_dead_letters,
    replay_all_dead_letters,
    replay_dead_letters,
)
from tests.brokers import BROKER_KINDS, in_process_worker
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


@pytest.mark.parametrize("kind", BROKER_KINDS)
async def test_two_replays_racing_for_one_dead_letter_send_it_once(
    kind: str, unique_name: Callable[[str], str]
) -> None:
    async with idle_broker(kind, unique_name) as built:
        broker = built.broker
        broker.is_worker_process = not isinstance(broker, MemoryBroker)
        ran: list[str] = []

        @broker.task(task_name=f"once-{uuid.uuid4().hex}")
        async def once() -> None:
            ran.append("ran")

        task_id = uuid.uuid4().hex
        await inject_dead_letter(broker, task_body(broker, once.task_name, task_id).message, "x")
        (dead,) = (await list_dead_letters(broker)).dead_letters
        outcomes = await asyncio.gather(
            replay_dead_letters(broker, [dead.id]),
            replay_dead_letters(broker, [dead.id]),
            return_exceptions=True,
        )
        done = [o for o in outcomes if isinstance(o, ReplayReport)]
        refused = [o for o in outcomes if isinstance(o, DeadLetterNotFoundError)]
        assert len(done) == 1, outcomes
        assert len(refused) == 1, outcomes
        assert done[0].replayed == 1
        if isinstance(broker, MemoryBroker):

            async def succeeded() -> bool:
                try:
                    return await get_status(broker, task_id) is TaskStatus.SUCCESS
                except TaskNotFoundError:
                    return False

            await eventually(succeeded, 10, "the replayed task to succeed")
            assert ran == ["ran"]
        else:
            counted = await figures(broker)
            assert (counted.ready, counted.dead_lettered) == (1, 0)
            assert (await get_task_record(broker, task_id)).status is TaskStatus.PENDING
            # The record is on the kick the one message carries: a worker runs it.
            async with in_process_worker(broker):

                async def ran_once() -> bool:
                    return await get_status(broker, task_id) is TaskStatus.SUCCESS

                await eventually(ran_once, 10, "the replayed task to succeed")
            assert ran == ["ran"]
        broker.is_worker_process = False
