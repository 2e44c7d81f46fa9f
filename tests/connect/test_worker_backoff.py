"""A worker whose broker is down at start-up waits and retries, one line per attempt, and recovers.

The worker is a real ``taskiq worker`` process pointed at a port where nothing listens yet; the
test then opens a forwarder on that port to the shared server, and a task kicked there must run on
the same worker process (taskiq's manager never had to restart it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskiq_kit.rabbit import RabbitBroker
from tests.connect.proxy import CuttableProxy
from tests.delivery.apps import build_broker, child_pid, start_worker, stop_worker
from tests.private.redis import free_port
from tests.rabbit.harness import delete_topology

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _never(*_: object) -> None:
    raise AssertionError("runs in the worker process only")


async def _wait_for_lines(log: Path, text: str, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        output = await asyncio.to_thread(log.read_text, errors="replace")
        lines = [line for line in output.splitlines() if text in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("kind", ["rabbit", "redis"])
async def test_worker_backs_off_while_the_broker_is_down_then_runs_tasks(
    kind: str,
    request: pytest.FixtureRequest,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    redis_url: str = request.getfixturevalue("redis_url")
    real_url: str = request.getfixturevalue("amqp_url") if kind == "rabbit" else redis_url
    real_port = 5672 if kind == "rabbit" else 6379
    port = free_port()
    down_url = real_url.replace(f":{real_port}", f":{port}")
    name = unique_name("backoff")
    log = tmp_path / "worker.log"
    worker = start_worker(down_url, redis_url, name, log)
    client = build_broker(real_url, redis_url, name)
    proxy = CuttableProxy("127.0.0.1", real_port)
    try:
        retries = await _wait_for_lines(log, "retrying in", 2, timeout=30)
        assert len(retries) >= 2, log.read_text()[-3000:]
        assert "Traceback" not in log.read_text()
        first_pid = child_pid(worker)
        assert first_pid is not None
        await proxy.start(port)  # the server "comes back"
        await client.startup()
        pid_task = client.register_task(_never, task_name="pid")
        task = await pid_task.kiq(1)
        result = await task.wait_result(timeout=30)
        assert result.return_value == first_pid  # the worker that backed off ran it
        assert child_pid(worker) == first_pid
        assert worker.poll() is None
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
    finally:
        stop_worker(worker)
        await proxy.cut()
        await client.shutdown()
        if isinstance(client, RabbitBroker):
            await delete_topology(client)
