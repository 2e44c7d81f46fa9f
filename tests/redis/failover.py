"""A master failover under load behind Sentinels: what it loses, how long it takes.

One broker on the Sentinels' URL (results in the same Redis) runs a worker in this process and
kicks ``record(n)`` from ``concurrency`` coroutines, each pausing ``pause`` seconds after a kick. ``kill_after`` seconds in, the
master gets SIGKILL; once the Sentinels have promoted the replica, the old master is started again
(empty: no persistence) and the Sentinels make it the new master's replica, as a restarted pod would.
Every kick that returned without error must run; the kicks that raised are the unacknowledged ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

from taskiq_kit import make_broker
from taskiq_kit.redis import RedisBroker
from tests.brokers import in_process_worker
from tests.private.redis_sentinel import PrivateRedisSentinel


@dataclass
class FailoverResult:
    """What one failover round counted."""

    acknowledged: set[int] = field(default_factory=set)
    refused: int = 0
    ran: dict[int, int] = field(default_factory=dict)
    #: Seconds from the SIGKILL until the Sentinels named the replica as master.
    promoted_after: float = 0.0
    #: Seconds from the SIGKILL until the first kick that was acknowledged after it.
    kicks_back_after: float | None = None
    #: Why the last refused kick was refused.
    last_refusal: str = ""
    #: Seconds from the end of the load until every acknowledged kick had run.
    all_ran_after: float | None = None

    @property
    def lost(self) -> set[int]:
        """Acknowledged kicks that never ran."""
        return self.acknowledged - set(self.ran)

    @property
    def duplicates(self) -> int:
        """Extra runs (at-least-once: a redelivery after the failover)."""
        return sum(count - 1 for count in self.ran.values())


async def failover_round(
    sentinel: PrivateRedisSentinel,
    *,
    replica_acks: int,
    concurrency: int = 10,
    pause: float = 0.02,
    kill_after: float = 2.0,
    kick_for: float = 20.0,
    settle: float = 60.0,
) -> FailoverResult:
    """Kick under load, kill the master, and count what was lost."""
    name = f"kit-failover-{uuid.uuid4().hex[:8]}"
    broker = make_broker(
        sentinel.url,
        queue_name=name,
        idle_timeout=3.0,
        replica_acks=replica_acks,
        replica_ack_timeout=1.0,
        result_options={"prefix": name},
    )
    assert isinstance(broker, RedisBroker)
    result = FailoverResult()

    all_ran = asyncio.Event()

    @broker.task(task_name="record")
    async def record(number: int) -> None:
        result.ran[number] = result.ran.get(number, 0) + 1
        if stop.is_set() and not result.lost:
            all_ran.set()

    killed_at: float | None = None
    stop = asyncio.Event()

    counter = iter(range(10**9))

    async def kick_forever() -> None:
        while not stop.is_set():
            number = next(counter)
            sent_at = time.monotonic()
            try:
                await record.kiq(number)
            except Exception:
                result.refused += 1
                await asyncio.sleep(0.05)
                continue
            result.acknowledged.add(number)
            await asyncio.sleep(pause)  # a steady load the in-process worker keeps up with
            if killed_at is not None and sent_at > killed_at and result.kicks_back_after is None:
                result.kicks_back_after = time.monotonic() - killed_at

    await broker.startup()
    try:
        async with in_process_worker(broker):
            kickers = [asyncio.create_task(kick_forever()) for _ in range(concurrency)]
            await asyncio.sleep(kill_after)
            old = sentinel.current_master()
            old_port = old.port
            old.kill()
            killed_at = time.monotonic()
            result.promoted_after = await asyncio.to_thread(sentinel.wait_promoted, old_port)
            old.relaunch()  # comes back empty; the Sentinels make it a replica
            await asyncio.sleep(max(0.0, kick_for - (time.monotonic() - killed_at)))
            stop.set()
            await asyncio.gather(*kickers)
            stopped_at = time.monotonic()
            if not result.lost:
                all_ran.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_ran.wait(), settle)
            if not result.lost:
                result.all_ran_after = time.monotonic() - stopped_at
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()
    return result
