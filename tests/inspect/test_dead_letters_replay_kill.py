"""10,000 dead letters, a replaying process SIGKILLed half-way, a second run: each sent exactly once."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from taskiq_kit.inspect import queue_figures, replay_all_dead_letters
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.publisher import Outgoing
from taskiq_kit.redis import RedisBroker
from tests.brokers import BROKER_KINDS
from tests.inspect.dead_letters_support import eventually, figures, idle_broker, task_body
from tests.processes import kill_group, spawned
from tests.rabbit.harness import AMQP_URL
from tests.redis.harness import REDIS_URL

COUNT = 10_000

pytestmark = pytest.mark.slow


async def _fill_rabbit(broker: RabbitBroker, bodies: list[bytes]) -> None:
    queue = broker.names.default_queue

    async def one(body: bytes) -> None:
        out = Outgoing(body=body, headers={}, queue=queue, task_name="lost")
        await broker.publisher.dead_letter(out, "unknown task 'lost'")

    for start in range(0, len(bodies), 500):
        await asyncio.gather(*(one(body) for body in bodies[start : start + 500]))


async def _fill_redis(broker: RedisBroker, bodies: list[bytes]) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for index, body in enumerate(bodies):
                fields: dict[FieldT, EncodableT] = {
                    "data": body,
                    "reason": "unknown task 'lost'",
                    "attempt": 1,
                    "id": index,
                }
                pipe.xadd(broker.keys.dead, fields)
            await pipe.execute()
    finally:
        await client.aclose()


async def _sent_task_ids(kind: str, broker: object) -> list[str]:
    """The task id of every message in the task queue, taking them all out."""
    if isinstance(broker, RedisBroker):
        client = Redis.from_url(REDIS_URL)
        try:
            entries = await client.xrange(broker.keys.ready) or []
        finally:
            await client.aclose()
        return [json.loads((fields or {})[b"data"])["task_id"] for _, fields in entries]
    assert isinstance(broker, RabbitBroker)
    ids: list[str] = []
    all_in = asyncio.Event()

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        ids.append(json.loads(message.body)["task_id"])
        if len(ids) >= COUNT:
            all_in.set()

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(broker.names.default_queue, ensure=False)
        tag = await queue.consume(take, no_ack=True)
        await asyncio.wait_for(all_in.wait(), 60)
        await queue.cancel(tag)
    return ids


def _done(log: Path) -> int:
    found = re.findall(rb"done (\d+)/", log.read_bytes())
    return int(found[-1]) if found else 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", [kind for kind in BROKER_KINDS if kind != "memory"])
async def test_interrupted_replay_sends_each_dead_letter_once(
    kind: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    async with idle_broker(kind, unique_name) as built:
        broker = built.broker
        task_ids = [f"t{index}-{uuid.uuid4().hex[:8]}" for index in range(COUNT)]
        bodies = [task_body(broker, "lost", task_id).message for task_id in task_ids]
        if isinstance(broker, RabbitBroker):
            await _fill_rabbit(broker, bodies)
            exchange, queue = broker.names.exchange, broker.names.default_queue
        else:
            assert isinstance(broker, RedisBroker)
            await _fill_redis(broker, bodies)
            exchange, queue = "-", broker.keys.queue
        assert (await figures(broker)).dead_lettered == COUNT

        log = tmp_path / "replay.log"
        args = [sys.executable, "-m", "tests.inspect.dead_letters_child", kind, exchange, queue]
        with spawned("replay", args, log_path=log) as child:
            deadline = time.monotonic() + 60
            for _ in range(100_000):  # until a quarter is replayed
                if _done(log) >= COUNT // 4 or child.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.005)
            kill_group(child, signal.SIGKILL)
            child.wait(10)
        killed_at = _done(log)

        # What the killed process held goes back to the dead letters (RabbitMQ: a moment
        # later); nothing is lost or doubled: every message is in one of the two queues.
        async def settled() -> bool:
            now = await figures(broker)
            return now.ready + now.dead_lettered == COUNT

        await eventually(settled, 20, "ready + dead-lettered == 10,000 after the kill")
        left = (await figures(broker)).dead_lettered
        assert b"finished" not in log.read_bytes(), "the replay ended before it was killed"
        assert 0 < left < COUNT, f"killed after {killed_at}: {left} dead letters left"
        assert left <= COUNT - killed_at

        report = await replay_all_dead_letters(broker)
        assert report.replayed == left
        (after,) = await queue_figures(broker)
        assert after.dead_lettered == 0
        assert after.ready == COUNT
        sent = await _sent_task_ids(kind, broker)
        assert len(sent) == COUNT
        assert sorted(sent) == sorted(task_ids)
        if kind == "rabbit":
            assert (await figures(broker)).ready == 0  # nothing more than the 10,000
