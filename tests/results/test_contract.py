"""The result-backend contract: memory, Redis and PostgreSQL pass the same tests."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from taskiq.depends.progress_tracker import TaskProgress, TaskState
from taskiq.result import TaskiqResult

from taskiq_kit.exceptions import TaskFailedError
from taskiq_kit.memory import MemoryBroker
from taskiq_kit.redis.connect import is_cluster
from taskiq_kit.results.api import watch_progress
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.progress import ProgressReport, make_report
from taskiq_kit.results.record import ErrorInfo, TaskStatus
from taskiq_kit.results.redis import RedisResultBackend
from tests.results.conftest import MakeBackend, new_id, write


@dataclasses.dataclass
class _Message:
    task_id: str
    task_name: str
    labels: dict[str, Any]


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    label: str
    when: datetime


def ok(value: Any) -> TaskiqResult[Any]:
    return TaskiqResult[Any](is_err=False, return_value=value, execution_time=0.25)


async def test_result_round_trip(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    assert not await backend.is_result_ready(task_id)
    with pytest.raises(KeyError):
        await backend.get_result(task_id)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    value = {"n": 1, "items": [1.5, None, True], "point": Point(x=1, y=2), "box": Box("b", when)}
    await backend.set_result(task_id, ok(value))
    assert await backend.is_result_ready(task_id)
    result = await backend.get_result(task_id)
    assert not result.is_err
    assert result.error is None
    assert result.execution_time == 0.25
    assert result.return_value == {
        "n": 1,
        "items": [1.5, None, True],
        "point": {"x": 1, "y": 2},
        "box": {"label": "b", "when": "2026-01-02T03:04:05Z"},
    }


async def test_error_is_structured_and_reraised(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    try:
        raise KeyError("no such thing")
    except KeyError as exc:
        error = exc
    await backend.set_result(
        task_id,
        TaskiqResult[Any](is_err=True, return_value=None, execution_time=0.1, error=error),
    )
    result = await backend.get_result(task_id)
    assert result.is_err
    assert isinstance(result.error, TaskFailedError)
    assert result.error.error_type == "KeyError"
    assert "no such thing" in result.error.error_message
    assert result.error.remote_traceback is not None
    assert 'raise KeyError("no such thing")' in result.error.remote_traceback
    assert result.error.info == ErrorInfo(
        type="KeyError",
        message=result.error.error_message,
        traceback=result.error.remote_traceback,
    )
    with pytest.raises(TaskFailedError, match="task failed with KeyError"):
        result.raise_for_error()


async def test_large_and_unicode_results(backend: KitResultBackend[Any]) -> None:
    text = 'héllo ✓ 日本語 🎉 \u2028 "quoted" \\ back'
    large = "ü✓" * (5 * 1024 * 1024 // 5)  # ~5 MB of UTF-8
    await backend.set_result("unicode-" + (task_id := new_id()), ok({text: [text]}))
    assert (await backend.get_result("unicode-" + task_id)).return_value == {text: [text]}
    await backend.set_result(task_id, ok(large))
    assert (await backend.get_result(task_id)).return_value == large


async def test_status_transitions_merge(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    assert await backend.get_record(task_id) is None
    now = time.time()
    await write(backend, task_id, TaskStatus.PENDING, task_name="résumé", attempt=1, kicked_at=now)
    record = await backend.get_record(task_id)
    assert record is not None
    assert record.status is TaskStatus.PENDING
    await write(backend, task_id, TaskStatus.STARTED, worker="host:1", started_at=now + 1)
    info = ErrorInfo(type="ValueError", message="bad ✗", traceback="Traceback ...")
    await write(backend, task_id, TaskStatus.FAILURE, finished_at=now + 2, error=info)
    record = await backend.get_record(task_id)
    assert record is not None
    assert record.task_id == task_id
    assert record.status is TaskStatus.FAILURE
    assert record.task_name == "résumé"
    assert record.worker == "host:1"
    assert record.kicked_at == now
    assert record.started_at == now + 1
    assert record.finished_at == now + 2
    assert record.error == info
    # A retry (a later attempt of the same kick) starts the record afresh.
    await write(backend, task_id, TaskStatus.RETRYING, kicked_at=now, attempt=2)
    record = await backend.get_record(task_id)
    assert record is not None
    assert (record.status, record.attempt, record.error) == (TaskStatus.RETRYING, 2, None)
    assert (record.worker, record.started_at, record.finished_at) == (None, None, None)


async def test_progress_round_trip(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    assert await backend.read_progress(task_id) is None
    report = make_report(0.4, message="resizing ✓", meta={"step": 2, "when": datetime(2026, 1, 1)})
    await backend.write_progress(task_id, report)
    stored = await backend.read_progress(task_id)
    assert stored == report
    assert stored.meta == {"step": 2, "when": "2026-01-01T00:00:00"}
    # taskiq's own ProgressTracker API keeps working on the same storage.
    await backend.set_progress(task_id, TaskProgress[Any](state=TaskState.STARTED, meta={"a": 1}))
    progress = await backend.get_progress(task_id)
    assert progress is not None
    assert (progress.state, progress.meta) == ("STARTED", {"a": 1})
    await backend.write_progress(task_id, make_report(1.0))
    progress = await backend.get_progress(task_id)
    assert progress is not None
    assert progress.meta == {"fraction": 1.0, "message": None, "meta": None}


async def test_watch_progress_until_final_status(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    broker = MemoryBroker(result_backend=backend)  # only its backend is used: not started
    await write(backend, task_id, TaskStatus.STARTED)
    seen: list[ProgressReport] = []
    first = asyncio.Event()

    async def watch() -> None:
        async for report in watch_progress(broker, task_id, poll_interval=0.1):
            seen.append(report)
            first.set()

    watcher = asyncio.create_task(watch())
    await backend.write_progress(task_id, make_report(0.1, message="start"))
    await asyncio.wait_for(first.wait(), 5)
    for fraction in (0.5, 0.9, 1.0):
        await asyncio.sleep(0.05)
        await backend.write_progress(task_id, make_report(fraction))
    await write(backend, task_id, TaskStatus.SUCCESS)
    await asyncio.wait_for(watcher, 5)
    fractions = [report.fraction for report in seen]
    assert fractions[0] == 0.1
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)


async def test_watch_progress_of_finished_task_yields_last_report(
    backend: KitResultBackend[Any],
) -> None:
    task_id = new_id()
    broker = MemoryBroker(result_backend=backend)
    await backend.write_progress(task_id, make_report(0.7))
    await write(backend, task_id, TaskStatus.SUCCESS)
    reports = [r async for r in watch_progress(broker, task_id, poll_interval=0.1)]
    assert [r.fraction for r in reports] == [0.7]


async def test_ttl_expiry(make_backend: MakeBackend) -> None:
    backend = await make_backend(result_ttl=1.0)
    plain, scheduled = new_id(), new_id()
    now = time.time()
    await backend.write_progress(plain, make_report(1.0))
    await backend.set_result(plain, ok("gone soon"))
    await write(backend, scheduled, TaskStatus.SCHEDULED, kicked_at=now, attempt=1, due_at=now + 3)
    # A later write without due_at must not cut the scheduled task's record short.
    await write(backend, scheduled, TaskStatus.STARTED, started_at=now)
    assert await backend.is_result_ready(plain)
    await asyncio.sleep(1.5)
    assert not await backend.is_result_ready(plain)
    with pytest.raises(KeyError):
        await backend.get_result(plain)
    assert await backend.get_record(plain) is None
    assert await backend.read_progress(plain) is None
    record = await backend.get_record(scheduled)
    assert record is not None
    assert record.status is TaskStatus.STARTED
    # A row rewritten after expiry starts afresh (no stale result or progress).
    await write(backend, plain, TaskStatus.STARTED)
    assert not await backend.is_result_ready(plain)
    assert await backend.read_progress(plain) is None


async def test_keep_forever(make_backend: MakeBackend) -> None:
    backend = await make_backend(result_ttl=None)
    task_id = new_id()
    await backend.set_result(task_id, ok(1))
    record = await backend.get_record(task_id)
    assert record is not None
    assert record.status is TaskStatus.SUCCESS
    assert (await backend.get_result(task_id)).return_value == 1
    assert backend.record_ttl(None, time.time()) is None


async def test_concurrent_writers_one_task(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    values: dict[str, Any] = {
        "task_name": "concurrent",
        "worker": "host:42",
        "kicked_at": 1.0,
        "started_at": 2.0,
        "finished_at": 3.0,
    }
    names = list(values)
    writes = [
        write(backend, task_id, TaskStatus.STARTED, **{names[i % 5]: values[names[i % 5]]})
        for i in range(50)
    ]
    await asyncio.gather(*writes)
    record = await backend.get_record(task_id)
    assert record is not None
    assert record.status is TaskStatus.STARTED
    assert {name: getattr(record, name) for name in names} == values


async def test_concurrent_writers_many_tasks(backend: KitResultBackend[Any]) -> None:
    ids = [new_id() for _ in range(100)]

    async def life(task_id: str) -> None:
        lifecycle = backend.lifecycle
        message = _Message(task_id=task_id, task_name="life", labels={"kit_kicked_at": "1.5"})
        await lifecycle.kicked(message)
        await lifecycle.started(message)
        await backend.set_result(task_id, ok(task_id))

    await asyncio.gather(*(life(task_id) for task_id in ids))
    for task_id in ids:
        record = await backend.get_record(task_id)
        assert record is not None
        assert record.status is TaskStatus.SUCCESS
        assert (await backend.get_result(task_id)).return_value == task_id


async def test_watchers_are_pushed_changes_not_left_to_poll(make_backend: MakeBackend) -> None:
    """60 watchers on a 5-connection backend: all woken at once, writes never starved."""
    probe = await make_backend()
    options: dict[str, Any] = {}
    if isinstance(probe, RedisResultBackend) and is_cluster(probe.redis):
        # Known limit (docs/redis.md, Redis Cluster): with 5 connections per node, the cluster
        # client's pub/sub sometimes misses a final wake-up (about 1 run in 4; the watcher then
        # waits for its next poll). 20 per node pass every run here.
        options = {"max_connections": 20}
    elif isinstance(probe, RedisResultBackend):
        options = {"max_connections": 5}
    elif isinstance(probe, PostgresResultBackend):
        options = {"max_pool_size": 5}
    backend = await make_backend(**options)
    broker = MemoryBroker(result_backend=backend)
    ids = [new_id() for _ in range(3)]
    for task_id in ids:
        await write(backend, task_id, TaskStatus.STARTED)
    seen: dict[int, list[float | None]] = {}

    async def watch(number: int, task_id: str) -> None:
        seen[number] = []
        async for report in watch_progress(broker, task_id, poll_interval=30):
            seen[number].append(report.fraction)

    watchers = [asyncio.create_task(watch(n, ids[n % 3])) for n in range(60)]
    await asyncio.sleep(0.5)  # all subscribed
    for task_id in ids:
        await backend.write_progress(task_id, make_report(0.5))
    await asyncio.sleep(0.5)
    assert all(fractions == [0.5] for fractions in seen.values())
    for task_id in ids:
        await write(backend, task_id, TaskStatus.SUCCESS)
    await asyncio.wait_for(asyncio.gather(*watchers), 5)


async def test_nul_characters_do_not_lose_a_status(backend: KitResultBackend[Any]) -> None:
    task_id = new_id()
    info = ErrorInfo(type="ValueError", message="bad\x00byte", traceback=None)
    await write(backend, task_id, TaskStatus.FAILURE, error=info)
    await backend.write_progress(task_id, make_report(0.5, message="a\x00b"))
    record = await backend.get_record(task_id)
    assert record is not None
    assert record.status is TaskStatus.FAILURE
    assert record.error is not None
    assert record.error.message.startswith("bad")
    assert await backend.read_progress(task_id) is not None
