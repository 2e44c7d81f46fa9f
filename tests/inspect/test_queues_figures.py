"""Queue figures through the public API, on every transport: known kicks, delays, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from taskiq_kit import KitBroker, MemoryBroker
from taskiq_kit.exceptions import UnknownQueueError
from taskiq_kit.inspect import get_queue, queue_figures
from tests.brokers import BROKER_KINDS, in_process_worker
from tests.inspect.dead_letters_support import eventually, figures, idle_broker, task_body


@contextlib.asynccontextmanager
async def worker(broker: KitBroker) -> AsyncIterator[None]:
    """Consume ``broker`` in this process for the block (the memory broker runs tasks itself)."""
    if isinstance(broker, MemoryBroker):
        yield
        return
    async with in_process_worker(broker):
        yield
    broker.is_worker_process = False


@pytest.mark.parametrize("kind", BROKER_KINDS)
async def test_figures_count_ready_delayed_dead_and_running(
    kind: str, unique_name: Callable[[str], str]
) -> None:
    async with idle_broker(kind, unique_name) as built:
        broker = built.broker
        release = asyncio.Event()

        @broker.task(task_name=f"noop-{uuid.uuid4().hex}")
        async def noop() -> None:
            return None

        @broker.task(task_name=f"block-{uuid.uuid4().hex}")
        async def block() -> None:
            await release.wait()

        empty = await figures(broker)
        assert (empty.ready, empty.delayed, empty.dead_lettered) == (0, 0, 0)

        # With no worker: two delayed kicks and three ready ones.
        for _ in range(2):
            await noop.kicker().with_labels(delay=120).kiq()
        if not isinstance(broker, MemoryBroker):  # the memory broker runs them at once
            for _ in range(3):
                await noop.kiq()
            counted = await figures(broker)
            assert counted.ready == 3
            assert counted.consumers == 0
            assert counted.in_flight == (None if kind == "rabbit" else 0)
        assert (await figures(broker)).delayed == 2

        async with worker(broker):
            # Two dead letters: a task no worker knows, and a body that is no task message;
            # the ready ones run; a blocking one is in flight until released.
            await broker.kick(task_body(broker, f"unknown-{uuid.uuid4().hex}"))
            await broker.kick(
                task_body(broker, "x").model_copy(update={"message": b"\x00 not a message"})
            )
            await block.kiq()

            async def one_running() -> bool:
                now = await figures(broker)
                return (
                    now.dead_lettered == 2
                    and now.ready == 0
                    and now.in_flight in (1, None)
                    and now.consumers == 1
                )

            await eventually(one_running, 10, "two dead letters, one task in flight, none ready")
            running = await figures(broker)
            if kind != "rabbit":
                assert running.in_flight == 1
            release.set()

            async def settled() -> bool:
                return (await figures(broker)).in_flight in (0, None)

            await eventually(settled, 10, "the blocking task to settle")
            after = await figures(broker)
            assert (after.delayed, after.dead_lettered) == (2, 2)


@pytest.mark.parametrize("kind", BROKER_KINDS)
async def test_get_queue_by_name_and_unknown_queue(
    kind: str, unique_name: Callable[[str], str]
) -> None:
    async with idle_broker(kind, unique_name) as built:
        broker = built.broker
        names = [queue.name for queue in await queue_figures(broker)]
        assert len(names) == 1
        assert (await get_queue(broker, names[0])).name == names[0]
        with pytest.raises(UnknownQueueError, match="no-such-queue") as raised:
            await get_queue(broker, "no-such-queue")
        assert names[0] in str(raised.value)
