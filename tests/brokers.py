"""Brokers under the shared contract tests: one entry per transport.

Each transport adds a builder to ``_BUILDERS``; the contract suite runs against every entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from taskiq.receiver import Receiver

from taskiq_kit import KitBroker, MemoryBroker, make_broker


@dataclass
class BrokerHarness:
    """A started broker and what the contract tests need to inspect it."""

    kind: str
    broker: KitBroker
    #: Dead-lettered messages as (raw body, reason), read from the transport's DLQ.
    read_dead_letters: Callable[[], Any]
    extra: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[Callable[[str], str]], "contextlib.AbstractAsyncContextManager[BrokerHarness]"]


@asynccontextmanager
async def _memory(_names: Callable[[str], str]) -> AsyncIterator[BrokerHarness]:
    broker = make_broker("memory://")
    assert isinstance(broker, MemoryBroker)

    async def dead() -> list[tuple[bytes, str]]:
        return list(broker.dead_letters)

    yield BrokerHarness(kind="memory", broker=broker, read_dead_letters=dead)


_BUILDERS: dict[str, Builder] = {"memory": _memory}

# Each transport's test package provides ``build(names)``: an async context manager yielding a
# BrokerHarness for a broker on uuid-named queues/keys, cleaned up on exit.
for _kind, _module in (("rabbit", "tests.rabbit.harness"), ("redis", "tests.redis.harness")):
    try:
        _BUILDERS[_kind] = importlib.import_module(_module).build
    except ModuleNotFoundError as _exc:
        if _exc.name is None or not _module.startswith(_exc.name):
            raise

#: Broker kinds the contract suite runs against (``TASKIQ_KIT_TEST_BROKERS=memory,redis`` narrows it).
BROKER_KINDS = [
    kind
    for kind in os.environ.get("TASKIQ_KIT_TEST_BROKERS", ",".join(_BUILDERS)).split(",")
    if kind in _BUILDERS
]


@asynccontextmanager
async def in_process_worker(broker: KitBroker, **receiver_options: Any) -> AsyncIterator[Receiver]:
    """Consume ``broker`` in this process, as ``taskiq worker`` would, until the block ends."""
    if isinstance(broker, MemoryBroker):
        raise TypeError("the memory broker consumes by itself once started")
    # This process runs the broker's tasks, as a ``taskiq worker`` process does.
    broker.is_worker_process = True
    finish = asyncio.Event()
    with ThreadPoolExecutor(4) as pool:
        options = {"max_async_tasks": 100, **receiver_options}
        receiver = Receiver(broker=broker, executor=pool, run_startup=False, **options)
        consumer = asyncio.create_task(receiver.listen(finish))
        try:
            yield receiver
        finally:
            finish.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(consumer, 10)


@asynccontextmanager
async def make_harness(kind: str, names: Callable[[str], str]) -> AsyncIterator[BrokerHarness]:
    """Build, start and (for network brokers) consume a broker of ``kind``; tear it all down after."""
    async with _BUILDERS[kind](names) as built:
        broker = built.broker
        await broker.startup()
        try:
            if isinstance(broker, MemoryBroker):
                yield built
            else:
                async with in_process_worker(broker):
                    yield built
        finally:
            await broker.shutdown()
