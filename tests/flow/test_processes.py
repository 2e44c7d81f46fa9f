"""Flow control across real ``taskiq worker`` processes, on Redis and on PostgreSQL stores.

* the measured rate of a limited task over a window (``KIT_FLOW_RATE_WINDOW`` seconds, 15 by
  default; the issue asks for a minute: ``KIT_FLOW_RATE_WINDOW=60`` runs that);
* never more than N at once under 20 concurrent kicks (the tasks record their start and end in
  Redis; the test computes the largest overlap);
* a worker SIGKILLed while holding a slot does not leak it (its lease runs out);
* unique and debounced kicks from several processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from redis.asyncio import Redis

from taskiq_kit import KitBroker, TaskStatus, get_task_record
from taskiq_kit.rabbit import RabbitBroker
from tests.flow.worker_app import (
    AMQP_URL,
    CAPPED_LIMIT,
    HOLDER_LEASE,
    POSTGRES_URL,
    REDIS_URL,
    build,
    key,
)
from tests.processes import spawned
from tests.redis.waiting import eventually

pytestmark = [pytest.mark.slow]

WINDOW = float(os.environ.get("KIT_FLOW_RATE_WINDOW", "15"))
RATE = 10.0  # per second: the ``limited`` task's "10/s"


def workers(
    config: str, name: str, log: Path, *, processes: int = 3, **env: str
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``taskiq worker tests.flow.worker_app:broker --workers <processes>``, output in ``log``."""
    args = [sys.executable, "-m", "taskiq", "worker", "tests.flow.worker_app:broker"]
    return spawned(
        "flow worker",
        [*args, "--workers", str(processes)],
        {"KIT_TEST_CONFIG": config, "KIT_TEST_NAME": name, **env},
        log_path=log,
    )


@contextlib.contextmanager
def kickers(config: str, name: str, task: str, count: int, processes: int) -> Iterator[None]:
    """``processes`` kicking processes, each kicking ``task`` ``count`` times on the go signal."""
    env = {"KIT_TEST_CONFIG": config, "KIT_TEST_NAME": name}
    with contextlib.ExitStack() as stack:
        for i in range(processes):
            args = [sys.executable, "-m", "tests.flow.kick_app", task, str(count), f"p{i}"]
            stack.enter_context(spawned("flow kicker", args, env))
        yield


async def _cleanup(config: str, name: str, broker: KitBroker) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [found async for found in client.scan_iter(match=f"*{name}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    if isinstance(broker, RabbitBroker):
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            levels = broker.topology.levels
            for queue in broker.names.all_queues(levels):
                await channel.queue_delete(queue)
            for exchange in broker.names.all_exchanges(levels):
                await channel.exchange_delete(exchange)
    if config == "pg":
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for suffix in ("", "_flow_rate", "_flow_slots", "_flow_claims"):
                await conn.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def app(config: str) -> AsyncIterator[tuple[KitBroker, str, Redis]]:
    """A started kicking broker of ``config`` with the worker app's tasks, and a Redis client."""
    name = f"kit_flow_{uuid.uuid4().hex[:10]}"
    broker = build(config, name)
    from tests.flow import worker_app  # noqa: PLC0415

    for task in worker_app.broker.local_task_registry.values():
        broker.register_task(task.original_func, task_name=task.task_name, **_options(task))
    client = Redis.from_url(REDIS_URL)
    await broker.startup()
    try:
        yield broker, name, client
    finally:
        await broker.shutdown()
        await client.aclose()
        await _cleanup(config, name, broker)


def _options(task: Any) -> dict[str, Any]:
    """The flow options of a task of the worker app, with their key functions."""
    policy = task.broker.flow.policies[task.task_name]
    options: dict[str, Any] = {}
    if policy.rate is not None:
        options["rate_limit"] = policy.rate
    if policy.concurrency is not None:
        options["concurrency"] = policy.concurrency
    if policy.unique is not None:
        options["unique_for"] = policy.unique
    if policy.debounce is not None:
        options["debounce"] = policy.debounce
    return options


@pytest.mark.timeout(WINDOW + 60)
@pytest.mark.parametrize("config", ["redis", "pg"])
async def test_measured_rate_is_the_limit(
    config: str, tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    """A backlog of ``10/s`` tasks on three worker processes runs at 10/s, within 3 %."""
    total = int(RATE * WINDOW * 1.15) + 5
    async with app(config) as (broker, name, client):
        with workers(config, name, tmp_path / "workers.log"):
            limited = broker.find_task("limited")
            assert limited is not None
            handles = await asyncio.gather(*(limited.kiq(i) for i in range(total)))
            starts_key = key(name, "starts")

            async def window_seen() -> bool:
                first = await client.lindex(starts_key, 0)
                return first is not None and time.time() - float(first) > WINDOW + 1

            await eventually(window_seen, WINDOW + 30, "the measuring window to pass")
            starts = sorted(float(value) for value in await client.lrange(starts_key, 0, -1))
            records = await asyncio.gather(
                *(get_task_record(broker, handle.task_id) for handle in handles)
            )
        in_window = [start for start in starts if start - starts[0] < WINDOW]
        measured = len(in_window) / WINDOW
        sys.stderr.write(
            f"[{config}] {len(in_window)} runs in the first {WINDOW:g} s: {measured:.2f}/s "
            f"(limit {RATE:g}/s)\n"
        )
        assert measured == pytest.approx(RATE, rel=0.03)
        # The rest of the backlog waits its turn as 'scheduled', and says why.
        waiting = [record for record in records if record.status is TaskStatus.SCHEDULED]
        assert waiting
        assert {record.reason for record in waiting} == {"rate limit 10/1s"}


def _max_overlap(events: list[bytes]) -> tuple[int, int]:
    """The most runs at once, and the number of runs, from ``+start`` / ``-end`` records."""
    marks = sorted((float(event[1:]), 1 if event[:1] == b"+" else -1) for event in events)
    running = most = 0
    for _, change in sorted(marks, key=lambda mark: (mark[0], mark[1])):
        running += change
        most = max(most, running)
    return most, sum(1 for _, change in marks if change == 1)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("config", ["redis", "pg", "rabbit"])
async def test_never_more_than_n_at_once(
    config: str, tmp_path: Path, redis_url: str, postgres_url: str, amqp_url: str
) -> None:
    """20 concurrent kicks of a ``concurrency=3`` task on three worker processes (the tasks
    without a slot go back through each transport's delay path: Redis, RabbitMQ)."""
    async with app(config) as (broker, name, client):
        with workers(config, name, tmp_path / "workers.log"):
            capped = broker.find_task("capped")
            assert capped is not None
            handles = await asyncio.gather(*(capped.kiq(i) for i in range(20)))
            for handle in handles:
                result = await handle.wait_result(timeout=60)
                assert not result.is_err
            events = await client.lrange(key(name, "events"), 0, -1)
        most, runs = _max_overlap(events)
        assert runs == 20
        assert most == CAPPED_LIMIT  # the limit is reached, and never exceeded


@pytest.mark.timeout(90)
@pytest.mark.parametrize("config", ["redis", "pg"])
async def test_a_killed_worker_does_not_leak_its_slot(
    config: str, tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    """SIGKILL the worker process running the only slot's holder: the next task gets the slot
    once the lease (``HOLDER_LEASE`` s) runs out, and the two never overlap."""
    async with app(config) as (broker, name, client):
        with workers(config, name, tmp_path / "workers.log", processes=2):
            holder = broker.find_task("holder")
            assert holder is not None
            await holder.kiq("stuck")
            holder_key = key(name, "holder")
            await eventually(lambda: client.llen(holder_key), 30, "the stuck task to take the slot")
            waiting = await holder.kiq("next")
            # It keeps being put off while the stuck task holds the slot (the worker is alive).
            await eventually(
                lambda: _reason_is(broker, waiting.task_id, "concurrency limit 1 reached"),
                10,
                "the next task to be put off",
            )
            assert await client.llen(holder_key) == 1
            tag, pid, _ = (await client.lindex(holder_key, 0) or b"").decode().split()
            assert tag == "stuck"
            killed_at = time.time()
            os.kill(int(pid), signal.SIGKILL)
            result = await waiting.wait_result(timeout=30)
            assert result.return_value == "next"
            runs = [line.decode().split() for line in await client.lrange(holder_key, 0, -1)]
        started = {tag: float(at) for tag, _, at in runs if tag == "next"}
        # Not before the lease of the dead holder ran out; not much later either.
        assert started["next"] - killed_at < HOLDER_LEASE + 5


async def _reason_is(broker: KitBroker, task_id: str, reason: str) -> bool:
    with contextlib.suppress(Exception):
        record = await get_task_record(broker, task_id)
        return record.reason == reason and record.status is TaskStatus.SCHEDULED
    return False


@pytest.mark.timeout(90)
@pytest.mark.parametrize("config", ["redis", "pg"])
async def test_unique_kicks_from_several_processes_share_one_task(
    config: str, tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    """4 processes kick ``unique(7)`` 5 times each, at once: one task id, one run."""
    async with app(config) as (broker, name, client):
        with (
            workers(config, name, tmp_path / "workers.log", processes=2),
            kickers(config, name, "unique", 5, 4),
        ):
            await eventually(
                lambda: _count(client, key(name, "kickers-ready"), 4), 30, "the kickers"
            )
            await client.set(key(name, "go"), 1)
            await eventually(
                lambda: _length(client, key(name, "kicks:unique"), 20), 30, "the kicks"
            )
            ids = {
                value.decode() for value in await client.lrange(key(name, "kicks:unique"), 0, -1)
            }
            assert len(ids) == 1
            unique = broker.find_task("unique")
            assert unique is not None
            (task_id,) = ids
            record = await get_task_record(broker, task_id)
            assert record.status in (TaskStatus.PENDING, TaskStatus.STARTED, TaskStatus.SUCCESS)
            handle = await unique.kiq(7)  # while it runs (or just after): the same task
            finished = await get_task_record(broker, task_id)
            if not finished.status.is_final:
                assert handle.task_id == task_id
            await eventually(lambda: _final(broker, task_id), 30, "the unique task to finish")
        assert int(await client.get(key(name, "unique-runs")) or 0) == 1


@pytest.mark.timeout(90)
@pytest.mark.parametrize("config", ["redis", "pg"])
async def test_debounced_kicks_from_several_processes_run_the_last_one(
    config: str, tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    """4 processes kick ``debounced("doc-1", ...)`` 5 times each, at once: one run, the others
    ``aborted`` with the reason ``superseded by <task id>``."""
    async with app(config) as (broker, name, client):
        with (
            workers(config, name, tmp_path / "workers.log", processes=2),
            kickers(config, name, "debounced", 5, 4),
        ):
            await eventually(
                lambda: _count(client, key(name, "kickers-ready"), 4), 30, "the kickers"
            )
            await client.set(key(name, "go"), 1)
            kicks_key = key(name, "kicks:debounced")
            await eventually(lambda: _length(client, kicks_key, 20), 30, "the kicks")
            ids = [value.decode() for value in await client.lrange(kicks_key, 0, -1)]
            assert len(set(ids)) == 20
            await eventually(
                lambda: _length(client, key(name, "debounced"), 1), 30, "the last kick to run"
            )
            records = {task_id: await _final_record(broker, task_id) for task_id in ids}
        statuses = [record.status for record in records.values()]
        assert statuses.count(TaskStatus.SUCCESS) == 1
        assert statuses.count(TaskStatus.ABORTED) == 19
        winner = next(task_id for task_id, r in records.items() if r.status is TaskStatus.SUCCESS)
        for task_id, record in records.items():
            if task_id != winner:
                assert record.reason is not None
                assert record.reason.startswith("superseded by ")
        assert await client.llen(key(name, "debounced")) == 1


async def _count(client: Redis, name: str, expected: int) -> bool:
    return int(await client.get(name) or 0) >= expected


async def _length(client: Redis, name: str, expected: int) -> bool:
    return int(await client.llen(name)) >= expected


async def _final(broker: KitBroker, task_id: str) -> bool:
    record = await get_task_record(broker, task_id)
    return record.status.is_final


async def _final_record(broker: KitBroker, task_id: str) -> Any:
    deadline = time.monotonic() + 20
    while True:
        record = await get_task_record(broker, task_id)
        if record.status.is_final or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)
