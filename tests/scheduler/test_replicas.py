"""Several ``taskiq scheduler`` processes on one group: every firing is sent exactly once.

The processes kick into a recording broker (``replica_app.py``) that appends each kick to a
Redis list, so the test checks the scheduler, not a transport.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from taskiq_kit.scheduler import SchedulerKeys

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))


@contextmanager
def replicas(
    count: int,
    *,
    redis_url: str,
    group: SchedulerKeys,
    record_key: str,
    lease: float,
    interval: float,
    log_dir: Path,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {
        **os.environ,
        "TASKIQ_KIT_SCHEDULER_REDIS_URL": redis_url,
        "TASKIQ_KIT_SCHEDULER_NAME": group.name,
        "TASKIQ_KIT_SCHEDULER_LEASE": str(lease),
        "TASKIQ_KIT_SCHEDULER_SCHEDULES": json.dumps(
            [{"id": "tick", "task": "tick", "interval": interval}]
        ),
        "KIT_TEST_RECORD_KEY": record_key,
    }
    processes = []
    logs = []
    try:
        for index in range(count):
            log = (log_dir / f"{group.name}-{index}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    [TASKIQ, "scheduler", "tests.scheduler.replica_app:scheduler"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


async def records(client: Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in await client.lrange(key, 0, -1)]


def check_exactly_once(kicks: list[dict[str, Any]], interval: float) -> list[float]:
    """Each firing kicked once, on time; returns the firing instants in order."""
    per_task = Counter(kick["task_id"] for kick in kicks)
    assert [task for task, n in per_task.items() if n > 1] == []
    instants = sorted(kick["fire_at"] for kick in kicks)
    assert len(instants) == len(set(instants))
    late = [kick for kick in kicks[1:] if not 0 <= kick["kicked_at"] - kick["fire_at"] < 1.0]
    assert late == []
    assert all(instant % interval == 0 for instant in instants)
    return instants


@pytest.fixture
async def record_keys(redis_client: Redis, unique_name: Callable[[str], str]) -> Any:
    made: list[str] = []

    def make() -> str:
        made.append(unique_name("records"))
        return made[-1]

    yield make
    if made:
        await redis_client.delete(*made)


@pytest.mark.timeout(120)
async def test_two_and_three_replicas_fire_each_instant_once(
    redis_url: str,
    redis_client: Redis,
    unique_name: Callable[[str], str],
    record_keys: Callable[[], str],
    tmp_path: Path,
) -> None:
    groups = [
        SchedulerKeys(name=unique_name("three"), prefix="kit-test-scheduler"),
        SchedulerKeys(name=unique_name("two"), prefix="kit-test-scheduler"),
    ]
    keys = [record_keys(), record_keys()]
    try:
        with (
            replicas(
                3,
                redis_url=redis_url,
                group=groups[0],
                record_key=keys[0],
                lease=5,
                interval=2,
                log_dir=tmp_path,
            ),
            replicas(
                2,
                redis_url=redis_url,
                group=groups[1],
                record_key=keys[1],
                lease=5,
                interval=2,
                log_dir=tmp_path,
            ),
        ):
            await asyncio.sleep(62)
        for key in keys:
            kicks = await records(redis_client, key)
            instants = check_exactly_once(kicks, 2)
            assert len(instants) >= 27  # ~60 s of a 2 s interval, less the start-up
            assert all(b - a == 2 for a, b in itertools.pairwise(instants))  # no firing lost
            assert len({kick["pid"] for kick in kicks}) == 1  # one leader all along
    finally:
        for group in groups:
            await redis_client.delete(*group.all())


async def firing_leader(
    redis_client: Redis, key: str, processes: Sequence[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """The replica process that fires, once it has fired three times."""
    deadline = time.time() + 20
    while len(await records(redis_client, key)) < 3:
        assert time.time() < deadline, "no replica became leader"
        await asyncio.sleep(0.2)
    leader_pid = (await records(redis_client, key))[-1]["pid"]
    return next(process for process in processes if process.pid == leader_pid)


@pytest.mark.timeout(60)
async def test_killing_the_leader_hands_over_within_the_lease(
    redis_url: str,
    redis_client: Redis,
    unique_name: Callable[[str], str],
    record_keys: Callable[[], str],
    tmp_path: Path,
) -> None:
    group = SchedulerKeys(name=unique_name("kill"), prefix="kit-test-scheduler")
    key = record_keys()
    lease, interval = 3.0, 1.0
    try:
        with replicas(
            3,
            redis_url=redis_url,
            group=group,
            record_key=key,
            lease=lease,
            interval=interval,
            log_dir=tmp_path,
        ) as processes:
            leader = await firing_leader(redis_client, key, processes)
            leader_pid = leader.pid
            leader.send_signal(signal.SIGKILL)
            killed_at = time.time()
            await asyncio.sleep(lease + 4)
        kicks = await records(redis_client, key)
        check_exactly_once(kicks, interval)
        after = [kick for kick in kicks if kick["kicked_at"] > killed_at]
        assert after, "nobody fired after the leader died"
        assert {kick["pid"] for kick in after} - {leader_pid}
        assert after[0]["kicked_at"] - killed_at <= lease + interval + 0.5
    finally:
        await redis_client.delete(*group.all())


@pytest.mark.timeout(60)
async def test_sigterm_hands_the_lease_over_at_once(
    redis_url: str,
    redis_client: Redis,
    unique_name: Callable[[str], str],
    record_keys: Callable[[], str],
    tmp_path: Path,
) -> None:
    group = SchedulerKeys(name=unique_name("term"), prefix="kit-test-scheduler")
    key = record_keys()
    lease, interval = 10.0, 0.5  # a lease far longer than the handover may take
    try:
        with replicas(
            2,
            redis_url=redis_url,
            group=group,
            record_key=key,
            lease=lease,
            interval=interval,
            log_dir=tmp_path,
        ) as processes:
            leader = await firing_leader(redis_client, key, processes)
            leader_pid = leader.pid
            leader.send_signal(signal.SIGTERM)
            stopped_at = time.time()
            assert leader.wait(timeout=10) == 0  # a clean stop, not a kill
            await asyncio.sleep(2.0)
        kicks = await records(redis_client, key)
        instants = check_exactly_once(kicks, interval)
        after = [kick for kick in kicks if kick["kicked_at"] > stopped_at]
        assert {kick["pid"] for kick in after} - {leader_pid}
        assert after[-1]["pid"] != leader_pid
        assert after[0]["kicked_at"] - stopped_at < 2.0  # not the 10 s lease
        assert all(b - a == interval for a, b in itertools.pairwise(instants))  # nothing lost
    finally:
        await redis_client.delete(*group.all())
