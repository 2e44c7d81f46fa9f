"""Long tasks on a RabbitMQ node whose ``consumer_timeout`` is 3 s (checked every second).

Each test runs real ``taskiq worker tests.rabbit.long_app:broker`` processes against a private
node; results, records and leases live in the shared Redis under a uuid prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from taskiq_kit import get_status, make_broker
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.results.record import TaskStatus
from taskiq_kit.results.redis_keys import ResultKeys
from tests.private.rabbit import PrivateRabbit, private_rabbit_node
from tests.processes import BIN, spawned

pytestmark = [pytest.mark.rabbit, pytest.mark.redis, pytest.mark.slow]

#: The node's ``consumer_timeout`` (ms) and how often its channels check it (ms).
CONSUMER_TIMEOUT_MS = 3000
TICK_MS = 1000


@pytest.fixture(scope="module")
def short_timeout_rabbit() -> Iterator[PrivateRabbit]:
    """A private node that closes a channel whose delivery stays unacknowledged for 3 s."""
    with private_rabbit_node(
        config={"consumer_timeout": str(CONSUMER_TIMEOUT_MS)},
        advanced={"channel_tick_interval": str(TICK_MS)},
    ) as node:
        yield node


def timeouts_logged(node: PrivateRabbit) -> int:
    """How many times the node closed a channel for a delivery acknowledgement timeout."""
    return sum(
        path.read_text(errors="replace").count("delivery acknowledgement on channel")
        for path in (node.dir / "log").glob("*.log")
    )


class LongSetup:
    """One test's names, worker environment, client broker and what the runs recorded."""

    def __init__(
        self, node: PrivateRabbit, redis_url: str, result_url: str, tmp: Path, **env: str
    ) -> None:
        run = uuid.uuid4().hex[:10]
        self.node = node
        self.result_url = result_url
        self.postgres = result_url.startswith("postgres")
        # A Redis key prefix, or a PostgreSQL table (and its lease table, ``<table>_long``).
        self.prefix = f"kit_test_long_{run}"
        self.queue = f"kit-test-long-{run}"
        self.out = tmp / "starts.txt"
        self.out.touch()
        self.tmp = tmp
        self.env = {
            "KIT_TEST_AMQP_URL": node.url,
            "KIT_TEST_RESULT_URL": result_url,
            "KIT_TEST_PREFIX": self.prefix,
            "KIT_TEST_EXCHANGE": f"kit-test-long-{run}",
            "KIT_TEST_QUEUE": self.queue,
            "KIT_TEST_OUT": str(self.out),
            **env,
        }
        self.broker = make_broker(
            node.url,
            result_url=result_url,
            result_options={"table": self.prefix} if self.postgres else {"prefix": self.prefix},
            exchange=self.env["KIT_TEST_EXCHANGE"],
            queue_name=self.queue,
            queue_type=self.env.get("KIT_TEST_QUEUE_TYPE", "quorum"),
            delay_mode="ladder",
        )
        assert isinstance(self.broker, RabbitBroker)
        self.redis = aioredis.from_url(redis_url)

        @self.broker.task(task_name="long_sleep", long=True)
        async def long_sleep(seconds: float) -> int:
            raise AssertionError("runs in the worker process")

        @self.broker.task(task_name="plain_sleep")
        async def plain_sleep(seconds: float) -> int:
            raise AssertionError("runs in the worker process")

        self.long_sleep = long_sleep
        self.plain_sleep = plain_sleep

    @contextlib.contextmanager
    def worker(self, name: str) -> Iterator[subprocess.Popen[bytes]]:
        """A ``taskiq worker`` (one child process) killed at the end of the block."""
        args = [str(BIN / "taskiq"), "worker", "tests.rabbit.long_app:broker", "--workers", "1"]
        with spawned(name, args, self.env, log_path=self.tmp / f"{name}.log") as process:
            yield process

    def log(self, name: str) -> str:
        """What worker ``name`` printed so far."""
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def starts(self) -> list[tuple[str, int]]:
        """``(task name, pid)`` of every run started, in order."""
        lines = self.out.read_text().split()
        return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]

    async def kept(self) -> int:
        """Messages the store keeps under a lease."""
        if not self.postgres:
            return int(await self.redis.hlen(ResultKeys(self.prefix).long_kept()))  # type: ignore[misc]
        conn = await asyncpg.connect(self.result_url)
        try:
            return int(await conn.fetchval(f'SELECT count(*) FROM "{self.prefix}_long"'))
        except asyncpg.UndefinedTableError:
            return 0  # no worker kept anything yet
        finally:
            await conn.close()

    def queued(self) -> int:
        """Messages in the task queue, ready or unacknowledged."""
        for line in self.node.ctl("list_queues", "name", "messages").splitlines():
            name, _, count = line.partition("\t")
            if name == self.queue:
                return int(count)
        raise AssertionError(f"no queue {self.queue}")

    async def close(self) -> None:
        await self.broker.shutdown()
        if self.postgres:
            conn = await asyncpg.connect(self.result_url)
            try:
                await conn.execute(f'DROP TABLE IF EXISTS "{self.prefix}", "{self.prefix}_long"')
            finally:
                await conn.close()
        keys = [key async for key in self.redis.scan_iter(match=f"{self.prefix}:*")]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()


@pytest.fixture
async def setup_for(
    short_timeout_rabbit: PrivateRabbit,
    redis_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[..., Awaitable[LongSetup]]]:
    made: list[LongSetup] = []

    async def make(store: str = "redis", **env: str) -> LongSetup:
        result_url = request.getfixturevalue("postgres_url") if store == "postgres" else redis_url
        setup = LongSetup(short_timeout_rabbit, redis_url, result_url, tmp_path, **env)
        made.append(setup)
        await setup.broker.startup()
        return setup

    yield make
    for setup in made:
        await setup.close()


async def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``condition`` (sync or async) every 0.1 s until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_long_task_outlives_consumer_timeout_and_runs_once(
    setup_for: Callable[..., Awaitable[LongSetup]],
) -> None:
    # A labelled task kept at once, and a plain one kept after 1 s (long_task_after).
    setup = await setup_for(KIT_TEST_LONG_AFTER="1")
    timeouts_before = timeouts_logged(setup.node)
    seconds = 3 * CONSUMER_TIMEOUT_MS / 1000
    with setup.worker("worker") as worker:
        labelled = await setup.long_sleep.kiq(seconds)
        plain = await setup.plain_sleep.kiq(seconds)
        first = await labelled.wait_result(timeout=40)
        second = await plain.wait_result(timeout=40)
        assert first.return_value == second.return_value  # both ran in the one worker child
        assert worker.poll() is None
    assert not first.is_err
    assert not second.is_err
    # Each ran once; RabbitMQ never timed a delivery out; nothing is left kept or queued.
    assert sorted(name for name, _ in setup.starts()) == ["long_sleep", "plain_sleep"]
    assert timeouts_logged(setup.node) == timeouts_before
    assert await setup.kept() == 0
    assert setup.queued() == 0
    assert await get_status(setup.broker, labelled.task_id) is TaskStatus.SUCCESS


@pytest.mark.parametrize("store", ["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_worker_killed_mid_task_runs_it_again_once_elsewhere(
    setup_for: Callable[..., Awaitable[LongSetup]], store: str
) -> None:
    setup = await setup_for(store)
    with setup.worker("first") as first, setup.worker("second") as second:
        groups = {first.pid: "first", second.pid: "second"}
        task = await setup.long_sleep.kiq(6.0)
        await wait_for(setup.starts, 30, "the first run")
        await wait_for(setup.kept, 10, "the message kept under a lease")
        [(_, pid)] = setup.starts()
        victim = groups[os.getpgid(pid)]
        os.killpg(os.getpgid(pid), signal.SIGKILL)  # the worker and its child, mid-task
        result = await task.wait_result(timeout=40)
        assert not result.is_err
        survivor = first if victim == "second" else second
        assert survivor.poll() is None
    # Started twice in all: once in the killed worker, once (the re-send) in the other one.
    starts = setup.starts()
    assert len(starts) == 2, starts
    assert os.getpgid(result.return_value) == survivor.pid
    assert starts[1][1] == result.return_value
    assert await setup.kept() == 0
    assert setup.queued() == 0
    assert "sent again" in setup.log("first" if victim == "second" else "second")


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_plain_task_past_consumer_timeout_without_keeping_runs_twice(
    setup_for: Callable[..., Awaitable[LongSetup]], queue_type: str
) -> None:
    # What the kit does without long tasks (long_task_after=None, no label), documented in
    # docs/long-tasks.md: RabbitMQ closes the worker's channel after consumer_timeout and
    # delivers the message again; the worker survives, reopens its channel and, the record
    # saying "started" (a run that never finished), runs the message again beside the first
    # run once the isolation wait (10 s) is over.
    setup = await setup_for(KIT_TEST_QUEUE_TYPE=queue_type)
    timeouts_before = timeouts_logged(setup.node)
    with setup.worker("worker") as worker:
        task = await setup.plain_sleep.kiq(18.0)
        await wait_for(lambda: len(setup.starts()) >= 2, 40, "a second run")
        assert worker.poll() is None  # the closed channel did not kill the worker
        result = await task.wait_result(timeout=20)
        assert not result.is_err
        [(_, first), (_, second)] = setup.starts()[:2]
        assert first == second  # the same worker process ran it twice
    assert timeouts_logged(setup.node) > timeouts_before
    assert "past its consumer_timeout" in setup.log("worker")
