"""A Redis restart under a running worker: it reconnects by itself, no hot loop, no crash.

Uses a private ``redis-server`` on a free port, so the shared server stays up for other tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from tests.brokers import in_process_worker
from tests.redis.harness import make_test_broker
from tests.redis.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A throw-away ``redis-server`` without persistence, restartable on the same port."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.02)
        pytest.fail("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(60)
async def test_worker_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    broker = make_test_broker("restart", url=private_redis.url, idle_timeout=1.0)
    ran: list[str] = []

    @broker.task(task_name="mark")
    async def mark(tag: str) -> None:
        ran.append(tag)

    await broker.startup()
    try:
        async with in_process_worker(broker) as receiver:
            await mark.kiq("before")
            await eventually(lambda: "before" in ran, 10, "before")
            await mark.kicker().with_labels(delay=30).kiq("lost with the data")

            private_redis.stop()
            cpu = time.process_time()
            await asyncio.sleep(3)
            spent = time.process_time() - cpu
            private_redis.start()

            # Without persistence the stream and the group are gone: the worker re-creates them.
            await mark.kiq("after")
            await eventually(lambda: "after" in ran, 15, "after")
            await mark.kicker().with_labels(delay=0.5).kiq("delayed after")
            await eventually(lambda: "delayed after" in ran, 10, "delayed after")
            assert receiver is not None
    finally:
        await broker.shutdown()
    assert spent < 1.0, f"the worker burnt {spent:.2f} s of CPU in 3 s of outage: a hot loop"
    client = Redis.from_url(private_redis.url)
    try:
        groups = await client.xinfo_groups(broker.keys.ready)
    finally:
        await client.aclose()
    assert [group["name"] for group in groups] == [broker.keys.group.encode()]
