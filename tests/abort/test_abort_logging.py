"""An abort is not an error: one INFO line in the worker, and no parse warning on the client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from taskiq_kit import AbortOutcome, TaskStatus, abort_task, get_status
from tests.abort.helpers import redis_broker, running, wait_status, wait_until


def parse_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Cannot parse" in r.getMessage()]


async def test_abort_logs_one_info_line_and_the_client_no_parse_warning(
    redis_url: str, unique_name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    started = asyncio.Event()
    async with redis_broker(redis_url, unique_name("p"), unique_name("q")) as broker:

        @broker.task(task_name=unique_name("long"))
        async def long_job() -> int:
            started.set()
            await asyncio.sleep(30)
            return 1

        async with running(broker):
            handle = await long_job.kiq()
            await wait_until(started.is_set)
            await wait_status(broker, handle.task_id, TaskStatus.STARTED)
            assert await abort_task(broker, handle.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
            result = await handle.wait_result(timeout=10, check_interval=0.02)

    assert result.is_err
    assert "aborted" in str(result.error)
    assert parse_warnings(caplog) == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], caplog.text
    told = [r for r in caplog.records if r.getMessage() == f"Task {handle.task_id} aborted."]
    assert len(told) == 1
    assert told[0].levelno == logging.INFO
    assert told[0].exc_info is None
    assert told[0].exc_text is None


async def test_failed_result_gives_no_parse_warning_and_values_still_parse(
    redis_url: str, unique_name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with redis_broker(redis_url, unique_name("p"), unique_name("q")) as broker:

        @broker.task(task_name=unique_name("boom"))
        async def boom() -> int:
            raise ValueError("kaput")

        @broker.task(task_name=unique_name("number"))
        async def number() -> int:
            return 7

        async with running(broker):
            failed = await (await boom.kiq()).wait_result(timeout=10, check_interval=0.02)
            ok_handle = await number.kiq()
            ok = await ok_handle.wait_result(timeout=10, check_interval=0.02)
            assert await get_status(broker, ok_handle.task_id) is TaskStatus.SUCCESS

    assert failed.is_err
    assert "kaput" in str(failed.error)
    assert ok.return_value == 7
    assert parse_warnings(caplog) == []
    # A real failure is still an error in the worker's log, with its traceback.
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
