"""``taskiq worker tests.rabbit.worker_app:broker`` processes and what their tasks recorded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika

from taskiq_kit import make_broker
from taskiq_kit.rabbit import RabbitBroker

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))


class Workers:
    """Starts ``taskiq worker`` process groups on one RabbitMQ and reads what their tasks recorded.

    Args:
        url: the RabbitMQ the workers (and :meth:`broker`) use.
        exchange: the task exchange (uuid-named by the fixture).
        queue: the task queue.
        out: the file each task run appends a line to.

    """

    def __init__(self, url: str, exchange: str, queue: str, out: Path) -> None:
        self.url = url
        self.out = out
        self.env = dict(os.environ)
        self.env.update(
            KIT_TEST_AMQP_URL=url,
            KIT_TEST_EXCHANGE=exchange,
            KIT_TEST_QUEUE=queue,
            KIT_TEST_OUT=str(out),
        )
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a worker process (one child) with extra ``taskiq worker`` arguments."""
        process = subprocess.Popen(
            [TASKIQ, "worker", "tests.rabbit.worker_app:broker", "--workers", "1", *args],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,  # its own process group: the worker and its child
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.running.append(process)
        return process

    def signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        """Send ``signum`` to the worker's whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def lines(self) -> list[list[str]]:
        """The recorded lines, split on whitespace."""
        if not self.out.exists():
            return []
        return [line.split() for line in self.out.read_text().splitlines() if line]

    def recorded(self) -> Counter[int]:
        """How many times each task number ran."""
        return Counter(int(line[0]) for line in self.lines())

    def broker(self) -> RabbitBroker:
        """A client broker on the workers' exchange and queue."""
        broker = make_broker(
            self.url,
            exchange=self.env["KIT_TEST_EXCHANGE"],
            queue_name=self.env["KIT_TEST_QUEUE"],
            delay_mode="ladder",
        )
        assert isinstance(broker, RabbitBroker)
        return broker

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[RabbitBroker]:
        """A started client broker, shut down when the block ends."""
        broker = self.broker()
        await broker.startup()
        try:
            yield broker
        finally:
            await broker.shutdown()

    async def close(self) -> None:
        """Kill every worker, then delete the topology."""
        # Workers first: a live worker would declare its queue again after the cleanup.
        for process in self.running:
            self.signal(process, signal.SIGKILL)
            process.wait(10)
        broker = self.broker()
        async with await aio_pika.connect(self.url) as connection:
            await broker.topology.delete(await connection.channel())
