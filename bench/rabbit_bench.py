"""RabbitMQ benchmark, run by hand (not in CI).

1. End-to-end no-op tasks/s: raw aio-pika (publisher confirms, persistent messages, manual acks)
   vs taskiq-aio-pika vs taskiq-kit's RabbitBroker, same prefetch, same kick concurrency.
2. Delay lateness (actual run time minus due time) for mixed delays, taskiq-kit vs taskiq-aio-pika.

How to run (RabbitMQ on 127.0.0.1:5672, ``.venv/bin/pip install taskiq-aio-pika``)::

    .venv/bin/python bench/rabbit_bench.py --tasks 5000 --delays 1000 --max-delay 30

Everything is declared under uuid names and deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import aio_pika
from taskiq import AsyncBroker, BrokerMessage
from taskiq.acks import AckableMessage
from taskiq.brokers.inmemory_broker import InmemoryResultBackend
from taskiq.receiver import Receiver
from taskiq_aio_pika import AioPikaBroker
from taskiq_aio_pika.exchange import Exchange
from taskiq_aio_pika.queue import Queue, QueueType

from taskiq_kit import make_broker
from taskiq_kit.delivery import Delivery, DeliveryGate
from taskiq_kit.rabbit import RabbitBroker

URL = "amqp://guest:guest@127.0.0.1:5672/"


class Run(NamedTuple):
    """One throughput run: wall-clock tasks/s, and CPU of this process per task (both sides)."""

    per_second: float
    cpu_us: float


def name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def consuming(broker: AsyncBroker, max_async_tasks: int) -> AsyncIterator[None]:
    finish = asyncio.Event()
    with ThreadPoolExecutor(2) as pool:
        receiver = Receiver(
            broker, executor=pool, run_startup=False, max_async_tasks=max_async_tasks
        )
        task = asyncio.create_task(receiver.listen(finish))
        try:
            yield
        finally:
            finish.set()
            await asyncio.wait_for(task, 30)


async def kick_all(count: int, concurrency: int, kick: Callable[[int], Awaitable[object]]) -> None:
    for start in range(0, count, concurrency):
        await asyncio.gather(*(kick(n) for n in range(start, min(count, start + concurrency))))


async def raw_aio_pika(count: int, concurrency: int, prefetch: int) -> Run:
    queue_name = name("raw")
    done = asyncio.Event()
    seen = 0
    async with (
        await aio_pika.connect_robust(URL) as write,
        await aio_pika.connect_robust(URL) as read,
    ):
        wchan = await write.channel(publisher_confirms=True)
        rchan = await read.channel()
        await rchan.set_qos(prefetch_count=prefetch)
        queue = await rchan.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        tag = await queue.consume(on_message)
        body = b'{"task_id": "x", "task_name": "noop", "labels": {}, "args": [], "kwargs": {}}'

        async def kick(n: int) -> None:
            await wchan.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )

        started, cpu = time.perf_counter(), time.process_time()
        await kick_all(count, concurrency, kick)
        await asyncio.wait_for(done.wait(), 300)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    return Run(count / elapsed, cpu / count * 1e6)


def peer_broker(prefetch: int) -> tuple[AioPikaBroker, list[str], list[str]]:
    exchange, queue, delay = name("peer-x"), name("peer-q"), name("peer-delay")
    broker = AioPikaBroker(
        URL,
        qos=prefetch,
        exchange=Exchange(name=exchange, type=aio_pika.ExchangeType.DIRECT),
        task_queues=[Queue(name=queue)],
        delay_queue=Queue(name=delay, type=QueueType.CLASSIC),
        dead_letter_queue=Queue(name=name("peer-dlq")),
    )
    broker.is_worker_process = True
    return broker, [queue, delay, broker._dead_letter_queue.name], [exchange]


def kit_broker(prefetch: int) -> RabbitBroker:
    broker = make_broker(
        URL, exchange=name("kit-x"), queue_name=name("kit-q"), prefetch_count=prefetch
    )
    assert isinstance(broker, RabbitBroker)
    return broker


async def cleanup(queues: list[str], exchanges: list[str]) -> None:
    async with await aio_pika.connect(URL) as connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


async def taskiq_throughput(
    broker: AsyncBroker, count: int, concurrency: int, *, receiver: bool = True
) -> Run:
    """Kick ``count`` no-op tasks and wait until all ran (``receiver=False``: the broker runs them
    itself, as ``memory://`` does)."""
    done = asyncio.Event()
    seen = 0

    @broker.task(task_name="noop")
    async def noop(n: int) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    await broker.startup()
    try:
        async with consuming(broker, max_async_tasks=100) if receiver else contextlib.nullcontext():
            started, cpu = time.perf_counter(), time.process_time()
            await kick_all(count, concurrency, noop.kiq)
            await asyncio.wait_for(done.wait(), 300)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await broker.shutdown()
    return Run(count / elapsed, cpu / count * 1e6)


async def peer_throughput(
    count: int, concurrency: int, prefetch: int, *, with_results: bool = False
) -> Run:
    peer, queues, exchanges = peer_broker(prefetch)
    if with_results:
        # The same work as the kit, which always stores each result (and status) in memory.
        peer = peer.with_result_backend(InmemoryResultBackend())
    try:
        return await taskiq_throughput(peer, count, concurrency)
    finally:
        await cleanup(queues, exchanges)


class QueueBroker(AsyncBroker):
    """taskiq over an in-memory queue: what taskiq's kicker and Receiver cost with no transport."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def kick(self, message: BrokerMessage) -> None:
        self.queue.put_nowait(message.message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        while True:
            yield await self.queue.get()


class OpenGate(DeliveryGate):
    """Admits everything unchecked (diagnostic runs only)."""

    async def admit(self, delivery: Delivery) -> AckableMessage | None:
        # No status middleware tells it the result is saved: take the batched ack when there is one.
        return AckableMessage(data=delivery.data, ack=delivery.ack_later or delivery.ack)


async def kit_throughput(count: int, concurrency: int, prefetch: int, *, bare: bool = False) -> Run:
    kit = kit_broker(prefetch)
    if bare:
        # Diagnostic only: the RabbitMQ transport without the kit's shared layer (timing, status
        # and abort middlewares, delivery gate), to show where the CPU goes.
        kit.middlewares = []
        kit.gate = OpenGate(
            lifecycle=kit.gate.lifecycle,
            parse=kit.gate.parse,
            find_task=kit.gate.find_task,
            max_attempts=kit.gate.max_attempts,
        )
    try:
        return await taskiq_throughput(kit, count, concurrency)
    finally:
        await cleanup(
            kit.names.all_queues(kit.topology.levels), kit.names.all_exchanges(kit.topology.levels)
        )


async def lateness(
    broker: AsyncBroker, count: int, max_delay: float, seed: int
) -> tuple[list[float], float]:
    late: list[float] = []
    done = asyncio.Event()

    @broker.task(task_name="due")
    async def due(at: float) -> None:
        late.append(time.time() - at)
        if len(late) == count:
            done.set()

    rng = random.Random(seed)
    await broker.startup()
    started = time.monotonic()
    try:
        async with consuming(broker, max_async_tasks=100):
            for _ in range(count):
                delay = rng.uniform(1, max_delay)
                await due.kicker().with_labels(delay=delay).kiq(time.time() + delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), max_delay * 3 + 30)
    finally:
        await broker.shutdown()
    return late, time.monotonic() - started


def summary(late: list[float], count: int) -> str:
    if not late:
        return "no task ran"
    ordered = sorted(late)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    early = sum(1 for x in late if x < 0)
    return (
        f"ran {len(late)}/{count}, p50 {statistics.median(late) * 1000:7.1f} ms, "
        f"p99 {p99 * 1000:8.1f} ms, max {ordered[-1] * 1000:8.1f} ms, early {early}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100, help="kicks in flight")
    parser.add_argument("--prefetch", type=int, default=50)
    parser.add_argument("--delays", type=int, default=1000)
    parser.add_argument("--max-delay", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--peer-qos", type=int, default=None, help="taskiq-aio-pika's qos (default: --prefetch)"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="also run taskiq-kit with its shared middlewares and gate off (transport cost only), "
        "and taskiq over an in-memory queue (taskiq's own cost, no transport)",
    )
    parser.add_argument(
        "--peer-results",
        action="store_true",
        help="also run taskiq-aio-pika storing its results in taskiq's in-memory result backend "
        "(the kit always stores results and status; the main peer row stores none)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-delays", action="store_true")
    args = parser.parse_args()

    peer_qos = args.peer_qos or args.prefetch
    if not args.skip_throughput:
        print(
            f"Throughput: {args.tasks} no-op tasks, {args.concurrency} kicks in flight, "
            f"prefetch {args.prefetch} (taskiq-aio-pika qos {peer_qos}), quorum queues, "
            f"confirms, persistent, acks; median of {args.rounds} interleaved rounds"
        )
        results: dict[str, list[Run]] = {
            "floor": [],
            "raw": [],
            "peer": [],
            "peer+results": [],
            "kit": [],
            "bare": [],
        }
        for _ in range(args.rounds):
            results["raw"].append(await raw_aio_pika(args.tasks, args.concurrency, args.prefetch))
            results["peer"].append(await peer_throughput(args.tasks, args.concurrency, peer_qos))
            if args.peer_results:
                results["peer+results"].append(
                    await peer_throughput(args.tasks, args.concurrency, peer_qos, with_results=True)
                )
            results["kit"].append(await kit_throughput(args.tasks, args.concurrency, args.prefetch))
            if args.diagnose:
                results["bare"].append(
                    await kit_throughput(args.tasks, args.concurrency, args.prefetch, bare=True)
                )
                results["floor"].append(
                    await taskiq_throughput(QueueBroker(), args.tasks, args.concurrency)
                )
        rate = {k: statistics.median(r.per_second for r in v) for k, v in results.items() if v}
        cpu = {k: statistics.median(r.cpu_us for r in v) for k, v in results.items() if v}
        rows = [("raw aio-pika", "raw"), ("taskiq-aio-pika", "peer")]
        if args.peer_results:
            rows.append(("  + results stored", "peer+results"))
        rows.append(("taskiq-kit", "kit"))
        if args.diagnose:
            rows.append(("kit transport only", "bare"))
            rows.append(("taskiq, no transport", "floor"))
        for label, key in rows:
            rounds = ", ".join(f"{r.per_second:.0f}" for r in results[key])
            print(
                f"  {label:<20} {rate[key]:8.0f} tasks/s  {cpu[key]:6.0f} us CPU/task  "
                f"(rounds: {rounds})"
            )
        print(
            f"  ratios (tasks/s): kit/raw {rate['kit'] / rate['raw']:.2f}x, "
            f"kit/taskiq-aio-pika {rate['kit'] / rate['peer']:.2f}x; "
            f"(CPU/task, lower is better): kit/raw {cpu['kit'] / cpu['raw']:.2f}x, "
            f"kit/taskiq-aio-pika {cpu['kit'] / cpu['peer']:.2f}x"
        )
        if args.peer_results:
            print(
                "  kit / taskiq-aio-pika storing results: "
                f"{rate['kit'] / rate['peer+results']:.2f}x tasks/s, "
                f"{cpu['kit'] / cpu['peer+results']:.2f}x CPU/task"
            )

    if not args.skip_delays:
        print(
            f"Delay lateness: {args.delays} tasks, delays uniform in 1-{args.max_delay:g} s "
            "(both brokers at once)"
        )
        peer, queues, exchanges = peer_broker(args.prefetch)
        kit = kit_broker(args.prefetch)
        try:
            (ours_late, ours_t), (theirs_late, theirs_t) = await asyncio.gather(
                lateness(kit, args.delays, args.max_delay, seed=1),
                lateness(peer, args.delays, args.max_delay, seed=1),
            )
        finally:
            await cleanup(queues, exchanges)
            await cleanup(
                kit.names.all_queues(kit.topology.levels),
                kit.names.all_exchanges(kit.topology.levels),
            )
        print(f"  taskiq-kit        {summary(ours_late, args.delays)} ({ours_t:.0f} s)")
        print(f"  taskiq-aio-pika   {summary(theirs_late, args.delays)} ({theirs_t:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
