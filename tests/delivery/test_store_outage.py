"""The result store restarts under load: the worker process survives and nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.apps import child_pid, start_worker, stop_worker
from tests.delivery.harness import TRANSPORTS, broker_url, eventually, started
from tests.private.redis import private_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.rabbit]

#: The WARNING and INFO lines of one outage (taskiq_kit.results.outage).
DOWN = "is unreachable"
BACK = "is reachable again"


async def _never(*_: Any) -> None:
    raise AssertionError("runs in the worker process only")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_result_store_restarts_keep_the_worker_and_every_confirmed_task(
    transport: str, tmp_path: Path, unique_name: Callable[[str], str], redis_url: str, amqp_url: str
) -> None:
    name = unique_name("outage")
    log = tmp_path / "worker.log"
    with private_redis() as store:
        async with started(transport, name, result_url=store.url) as kicker:
            pid = kicker.register_task(_never, task_name="pid")
            backend = kicker.result_backend
            worker = start_worker(broker_url(transport), store.url, name, log)
            try:
                first = await pid.kiq(-1)
                worker_pid = (await first.wait_result(timeout=30)).return_value
                assert worker_pid == child_pid(worker)
                confirmed: list[str] = []
                failed = 0
                stop = asyncio.Event()

                async def load() -> None:
                    nonlocal failed
                    number = 0
                    while not stop.is_set():
                        number += 1
                        try:
                            task = await pid.kiq(number, 0.2)
                        except Exception:
                            failed += 1
                            await asyncio.sleep(0.05)
                            continue
                        confirmed.append(task.task_id)
                        await asyncio.sleep(0.004)

                async def grown(by: int) -> Callable[[], Any]:
                    mark = len(confirmed)

                    async def check() -> bool:
                        return len(confirmed) >= mark + by

                    return check

                loader = asyncio.create_task(load())
                try:
                    for _ in range(2):
                        await eventually(await grown(300), 60, "kicks to flow")
                        # Tasks are running and being saved right now: the store goes away.
                        await asyncio.to_thread(store.restart, down_for=2.0)
                    await eventually(await grown(300), 60, "kicks to flow again")
                finally:
                    stop.set()
                    await loader
                assert failed > 0, "no kick met the outage: the store was not down under load"

                pending = list(confirmed)

                async def all_saved() -> bool:
                    ready = await asyncio.gather(*(backend.is_result_ready(t) for t in pending))
                    pending[:] = [
                        task_id for task_id, ok in zip(pending, ready, strict=False) if not ok
                    ]
                    return not pending

                await eventually(all_saved, 60, "every confirmed kick's result")
                assert child_pid(worker) == worker_pid, "the worker process was replaced"
            finally:
                stop_worker(worker)
            results = await asyncio.gather(*(backend.get_result(t) for t in confirmed))
            assert {result.return_value for result in results} == {worker_pid}
            assert not any(result.is_err for result in results)
    output = log.read_text()
    assert "is dead" not in output
    downs, backs = output.count(DOWN), output.count(BACK)
    assert downs == 2, output[-3000:]  # one line per outage, not per call or message
    assert backs == downs, output[-3000:]
