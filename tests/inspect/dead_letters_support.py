"""Helpers of the queue and dead-letter tests: idle brokers of each kind, dead letters made to order."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from taskiq.message import BrokerMessage, TaskiqMessage

from taskiq_kit import KitBroker, MemoryBroker
from taskiq_kit.inspect import list_dead_letters, queue_figures
from taskiq_kit.inspect.models import DeadLetter, QueueFigures
from tests.brokers import _BUILDERS, BrokerHarness


@asynccontextmanager
async def idle_broker(kind: str, names: Callable[[str], str]) -> AsyncIterator[BrokerHarness]:
    """A started broker of ``kind`` on uuid-named queues that nothing consumes (memory: itself)."""
    async with _BUILDERS[kind](names) as built:
        await built.broker.startup()
        try:
            yield built
        finally:
            await built.broker.shutdown()


def task_body(
    broker: KitBroker,
    task_name: str,
    task_id: str | None = None,
    labels: dict[str, Any] | None = None,
) -> BrokerMessage:
    """A well-formed kick of ``task_name`` (registered or not), as the kicker makes it."""
    message = TaskiqMessage(
        task_id=task_id or uuid.uuid4().hex,
        task_name=task_name,
        labels=labels or {},
        args=[],
        kwargs={},
    )
    return broker.formatter.dumps(message)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Await ``check()`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def figures(broker: KitBroker) -> QueueFigures:
    """The figures of the broker's default (first) queue."""
    return (await queue_figures(broker))[0]


async def all_dead_letters(broker: KitBroker) -> list[DeadLetter]:
    """Every dead letter, page after page."""
    found: list[DeadLetter] = []
    cursor = None
    while True:
        page = await list_dead_letters(broker, limit=1000, cursor=cursor)
        found.extend(page.dead_letters)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def inject_dead_letter(broker: KitBroker, body: bytes, reason: str) -> None:
    """Put ``body`` in the broker's dead letters as its transport does (test set-up only)."""
    from taskiq_kit.rabbit import RabbitBroker  # noqa: PLC0415
    from taskiq_kit.rabbit.publisher import Outgoing  # noqa: PLC0415
    from taskiq_kit.redis import RedisBroker  # noqa: PLC0415

    if isinstance(broker, RabbitBroker):
        out = Outgoing(body=body, headers={}, queue=broker.names.default_queue, task_name="?")
        await broker.publisher.dead_letter(out, reason, attempt=5)
    elif isinstance(broker, RedisBroker):
        fields: dict[Any, Any] = {"data": body, "reason": reason, "attempt": 5, "id": "0-1"}
        await broker.client.xadd(broker.keys.dead, fields)
    else:
        assert isinstance(broker, MemoryBroker)
        broker.dead_letter_box.add(body, reason, attempt=5)
