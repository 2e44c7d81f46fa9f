"""Metrics scraped over HTTP from a real ``taskiq worker --workers 2`` after known work."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskiq_kit import TaskStatus, abort_task
from taskiq_kit.observability.metrics import KitMetrics, MetricsMiddleware, metrics_app
from taskiq_kit.redis import RedisBroker
from tests.ops.app import build
from tests.ops.helpers import forget, wait_final, wait_status
from tests.processes import taskiq_worker
from tests.redis.harness import delete_keys

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_pair() -> int:
    """A port P with P and P + 1 both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: list[Samples], name: str, **labels: str) -> float:
    """The sum of ``name`` over every scrape, for the samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for scrape in samples
        for (sample, found), value in scrape.items()
        if sample == name and wanted <= set(found)
    )


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return parse(response.text)


async def wait_serving(ports: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending:
        for port in list(pending):
            try:
                await scrape(port)
                pending.discard(port)
            except httpx.TransportError:
                pass
        if pending:
            assert time.monotonic() < deadline, f"no metrics on {sorted(pending)}"
            await asyncio.sleep(0.1)


@contextmanager
def worker_group(name: str, port: int) -> Iterator[None]:
    env = {"KIT_TEST_NAME": name, "KIT_TEST_METRICS_PORT": str(port)}
    with taskiq_worker("tests.ops.app:broker", "--workers", "2", env=env):
        yield


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
async def test_every_worker_process_serves_exact_counts_after_known_work(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    name = unique_name("metrics")
    port = _free_pair()
    client = build(name)
    await client.startup()
    try:
        with worker_group(name, port):
            await wait_serving([port, port + 1])
            ok, boom, sleepy = (client.find_task(n) for n in ("ok", "boom", "sleepy"))
            assert ok is not None
            assert boom is not None
            assert sleepy is not None
            kicked = [await ok.kiq(n) for n in range(20)]
            kicked += [await boom.kiq() for _ in range(5)]
            delayed = await ok.kicker().with_labels(delay=3.0).kiq("late")
            running = await sleepy.kiq(60)
            for task in kicked:
                await wait_final(client, task.task_id)
            await wait_status(client, running.task_id, {TaskStatus.STARTED})
            await abort_task(client, running.task_id)
            assert await wait_final(client, running.task_id) is TaskStatus.ABORTED
            assert await wait_final(client, delayed.task_id) is TaskStatus.SUCCESS
            await ok.kicker().with_labels(delay=300).kiq("much later")
            scrapes = [await scrape(port), await scrape(port + 1)]
    finally:
        await client.shutdown()
        assert isinstance(client, RedisBroker)
        await delete_keys(client.keys)
        await forget(name)

    labels = {"queue": name}
    assert (
        total(scrapes, "taskiq_kit_tasks_total", task_name="ok", status="success", **labels) == 21
    )
    assert (
        total(scrapes, "taskiq_kit_tasks_total", task_name="boom", status="failure", **labels) == 5
    )
    assert total(scrapes, "taskiq_kit_tasks_total", task_name="sleepy", status="aborted") == 1
    assert total(scrapes, "taskiq_kit_tasks_total") == 27
    assert total(scrapes, "taskiq_kit_tasks_started_total") == 27
    assert total(scrapes, "taskiq_kit_task_runtime_seconds_count") == 27
    assert total(scrapes, "taskiq_kit_task_queue_wait_seconds_count") == 27
    # The delayed task waited 3 s for its due time; its queue wait does not count that.
    assert total(scrapes, "taskiq_kit_task_queue_wait_seconds_bucket", le="2.5") == 27
    assert total(scrapes, "taskiq_kit_tasks_in_progress") == 0
    assert total(scrapes, "taskiq_kit_abort_latency_seconds_count", task_name="sleepy") == 1
    assert total(scrapes, "taskiq_kit_abort_latency_seconds_bucket", le="5.0") == 1
    # Kicks are counted where they are made: here, not in the workers.
    assert total(scrapes, "taskiq_kit_tasks_kicked_total") == 0
    # worker-0 alone reads the queue figures (one series per queue for the group).
    first, second = scrapes
    assert total([first], "taskiq_kit_queue_figures_up") == 1
    assert total([first], "taskiq_kit_queue_delayed_messages", queue=name) == 1
    assert total([first], "taskiq_kit_queue_ready_messages", queue=name) == 0
    assert total([first], "taskiq_kit_queue_consumers", queue=name) == 2
    assert not any(sample.startswith("taskiq_kit_queue_") for sample, _ in second)


@pytest.mark.redis
async def test_the_mounted_app_serves_this_process_kicks_and_the_queue_gauges(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    from fastapi import FastAPI  # noqa: PLC0415

    name = unique_name("metrics")
    broker = build(name)
    middleware = MetricsMiddleware(KitMetrics(), port=None)
    broker.add_middlewares(middleware)
    app = FastAPI()
    app.mount("/metrics", metrics_app(broker, queue_cache=0))
    await broker.startup()
    try:
        ok = broker.find_task("ok")
        assert ok is not None
        for n in range(3):
            await ok.kiq(n)
        await ok.kicker().with_labels(delay=300).kiq("later")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            response = await http.get("/metrics/")
        assert response.status_code == 200
        samples = [parse(response.text)]
    finally:
        await broker.shutdown()
        assert isinstance(broker, RedisBroker)
        await delete_keys(broker.keys)
        await forget(name)
    assert total(samples, "taskiq_kit_tasks_kicked_total", task_name="ok", queue=name) == 4
    assert total(samples, "taskiq_kit_queue_figures_up") == 1
    assert total(samples, "taskiq_kit_queue_ready_messages", queue=name) == 3
    assert total(samples, "taskiq_kit_queue_delayed_messages", queue=name) == 1
    assert total(samples, "taskiq_kit_queue_dead_lettered_messages", queue=name) == 0


async def test_a_taken_port_does_not_stop_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    broker = build("kit-test-ops-port")  # not started: only the middleware's start-up runs
    middleware = MetricsMiddleware(port=0, addr="127.0.0.1")
    middleware.set_broker(broker)
    broker.is_worker_process = True
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        middleware.port = taken.getsockname()[1]
        await middleware.startup()
    assert middleware.server is None
    assert "cannot serve metrics" in caplog.text

    free = MetricsMiddleware(port=_free_pair(), addr="127.0.0.1", queue_metrics=False)
    free.set_broker(broker)
    await free.startup()
    try:
        assert free.server is not None
        samples = await scrape(free.server.port)
        assert total([samples], "taskiq_kit_tasks_in_progress") == 0
    finally:
        await free.shutdown()
