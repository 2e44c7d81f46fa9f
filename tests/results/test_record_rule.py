"""The record rule, enforced by every store in the write itself: memory, Redis and PostgreSQL.

A final status never goes back for the same kick (not to ``started``, not to another final
status), an aborted kick neither starts nor retries, and a newer kick starts afresh.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskiq.result import TaskiqResult

from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.record import TaskStatus
from tests.results.conftest import new_id, write


def ok(value: Any) -> TaskiqResult[Any]:
    return TaskiqResult[Any](is_err=False, return_value=value, execution_time=0.1)


async def status_of(backend: KitResultBackend[Any], task_id: str) -> TaskStatus | None:
    record = await backend.get_record(task_id)
    return None if record is None else record.status


async def test_a_final_status_never_goes_back_to_started(backend: KitResultBackend[Any]) -> None:
    task_id, kick = new_id(), time.time()
    await write(backend, task_id, TaskStatus.PENDING, kicked_at=kick, attempt=1)
    await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=1)
    finished = await write(
        backend, task_id, TaskStatus.SUCCESS, kicked_at=kick, attempt=1, result=b"x"
    )
    assert finished.applied
    # A late or duplicate start of the same run, and a duplicate kick, are refused.
    for status in (TaskStatus.STARTED, TaskStatus.PENDING):
        late = await write(backend, task_id, status, kicked_at=kick, attempt=1)
        assert (late.applied, late.status) == (False, "success")
    late = await write(backend, task_id, TaskStatus.STARTED)  # no kick named: the record's own
    assert not late.applied
    assert await status_of(backend, task_id) is TaskStatus.SUCCESS


async def test_the_first_final_status_of_a_run_wins(backend: KitResultBackend[Any]) -> None:
    task_id, kick = new_id(), time.time()
    await write(backend, task_id, TaskStatus.PENDING, kicked_at=kick, attempt=1)
    await write(backend, task_id, TaskStatus.ABORTED, kicked_at=kick, attempt=1, result=b"first")
    second = await backend.lifecycle.finished(
        task_id, ok(1).model_copy(update={"labels": {"kit_kicked_at": repr(kick)}}), b"second"
    )
    assert (second.applied, second.status) == (False, "aborted")
    assert await status_of(backend, task_id) is TaskStatus.ABORTED


async def test_a_later_attempt_and_a_newer_kick_start_afresh(
    backend: KitResultBackend[Any],
) -> None:
    task_id, kick = new_id(), time.time()
    await write(backend, task_id, TaskStatus.FAILURE, kicked_at=kick, attempt=1)
    retry = await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=2)
    assert retry.applied
    await backend.set_result(task_id, ok("old"))
    assert await status_of(backend, task_id) is TaskStatus.SUCCESS
    again = await write(backend, task_id, TaskStatus.PENDING, kicked_at=kick + 1, attempt=1)
    assert again.applied
    record = await backend.get_record(task_id)
    assert record is not None
    assert (record.status, record.attempt, record.finished_at) == (TaskStatus.PENDING, 1, None)
    assert not await backend.is_result_ready(task_id)  # the old kick's result is gone
    # A write of the older kick arriving late changes nothing.
    stale = await write(backend, task_id, TaskStatus.SUCCESS, kicked_at=kick, attempt=1)
    assert (stale.applied, stale.status) == (False, "pending")


async def test_an_aborted_kick_neither_starts_nor_retries(backend: KitResultBackend[Any]) -> None:
    task_id, kick = new_id(), time.time()
    missing = await backend.lifecycle.abort_requested(task_id)
    assert (missing.applied, missing.status) == (False, None)  # a tombstone creates nothing
    assert await backend.get_record(task_id) is None
    await write(backend, task_id, TaskStatus.PENDING, kicked_at=kick, attempt=1)
    marked = await backend.lifecycle.abort_requested(task_id)
    assert (marked.applied, marked.status, marked.abort_requested) == (True, "pending", True)
    for status, attempt in ((TaskStatus.STARTED, 1), (TaskStatus.RETRYING, 2)):
        refused = await write(backend, task_id, status, kicked_at=kick, attempt=attempt)
        assert (refused.applied, refused.abort_requested) == (False, True)
    closed = await backend.lifecycle.aborted(task_id)
    assert (closed.applied, closed.status) == (True, "aborted")
    assert await backend.is_result_ready(task_id)  # waiting callers return at once
    # Final: another tombstone is refused, and says so.
    again = await backend.lifecycle.abort_requested(task_id)
    assert (again.applied, again.status) == (False, "aborted")


async def test_concurrent_duplicate_finals_keep_one_outcome(
    backend: KitResultBackend[Any],
) -> None:
    """Two runs of the same kick finishing at once (a redelivery racing the original)."""
    ids = [new_id() for _ in range(50)]
    kick = time.time()
    labels = {"kit_kicked_at": repr(kick)}
    for task_id in ids:
        await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=1)

    def result(value: str) -> TaskiqResult[Any]:
        return ok(value).model_copy(update={"labels": labels})

    firsts = [
        backend.lifecycle.finished(task_id, result("first"), backend.encode_result(result("first")))
        for task_id in ids
    ]
    seconds = [backend.lifecycle.finished(task_id, result("second"), b"{}") for task_id in ids]
    outcomes = await asyncio.gather(*firsts, *seconds)
    assert [outcome.applied for outcome in outcomes] == [True] * len(ids) + [False] * len(ids)
    for task_id in ids:
        assert await status_of(backend, task_id) is TaskStatus.SUCCESS
        assert (await backend.get_result(task_id)).return_value == "first"


async def test_tombstones_of_many_tasks_in_one_read(backend: KitResultBackend[Any]) -> None:
    """What the workers' reconciliation poll asks for the tasks they run."""
    kick = time.time()
    ids = [new_id() for _ in range(6)]
    for task_id in ids[:5]:
        await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=1)
    for task_id in ids[1:3]:
        await backend.lifecycle.abort_requested(task_id)
    assert sorted(await backend.abort_requested_among(ids)) == sorted(ids[1:3])
    assert await backend.abort_requested_among([]) == []


async def test_an_earlier_attempt_keeps_its_result_not_the_record(
    backend: KitResultBackend[Any],
) -> None:
    """``no_result_on_retry=False``: the retry is kicked before the failed attempt's result is
    stored; the record stays the retry's, the failure is the result meanwhile."""
    task_id, kick = new_id(), time.time()
    first = {"kit_kicked_at": repr(kick)}
    second = {**first, "_retries": "1"}
    await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=1)
    await write(backend, task_id, TaskStatus.RETRYING, kicked_at=kick, attempt=2)
    failed = TaskiqResult[Any](
        is_err=True, return_value=None, execution_time=0.1, error=ValueError("first"), labels=first
    )
    outcome = await backend.lifecycle.finished(task_id, failed, backend.encode_result(failed))
    assert (outcome.applied, outcome.status) == (False, "retrying")
    record = await backend.get_record(task_id)
    assert record is not None
    assert (record.status, record.attempt) == (TaskStatus.RETRYING, 2)
    assert (await backend.get_result(task_id)).is_err
    await write(backend, task_id, TaskStatus.STARTED, kicked_at=kick, attempt=2)
    await backend.set_result(task_id, ok("second").model_copy(update={"labels": second}))
    assert await status_of(backend, task_id) is TaskStatus.SUCCESS
    # The first attempt's end arriving after the retry finished changes nothing at all.
    late = await backend.lifecycle.finished(task_id, failed, backend.encode_result(failed))
    assert not late.applied
    assert (await backend.get_result(task_id)).return_value == "second"
