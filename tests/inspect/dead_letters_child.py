"""A replaying process for the interrupted-replay test: ``python -m tests.inspect.dead_letters_child
<rabbit|redis> <exchange> <queue>`` replays every dead letter, printing ``done N/M`` per batch."""

from __future__ import annotations

import asyncio
import sys

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.inspect import replay_all_dead_letters
from tests import brokers  # noqa: F401 - imported first: it imports the harnesses below
from tests.rabbit.harness import AMQP_URL
from tests.redis.harness import make_test_broker


def broker_of(kind: str, exchange: str, queue: str) -> KitBroker:
    """The broker the test built, built again from its names."""
    if kind == "rabbit":
        return make_broker(AMQP_URL, exchange=exchange, queue_name=queue)
    return make_test_broker(queue)


async def main(kind: str, exchange: str, queue: str) -> None:
    broker = broker_of(kind, exchange, queue)
    await broker.startup()

    def progress(done: int, total: int) -> None:
        print(f"done {done}/{total}", flush=True)

    report = await replay_all_dead_letters(broker, progress=progress)
    print(f"finished {report.replayed}", flush=True)
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
