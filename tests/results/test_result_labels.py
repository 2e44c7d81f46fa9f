"""Labels taskiq allows make results that are stored, on a real Redis with a real worker; a codec
that cannot store a result ends the task as a failure, never as a ``started`` left forever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
from taskiq.serializers import MSGPackSerializer

from taskiq_kit import TaskStatus, get_status, get_task_record
from tests.abort.helpers import redis_broker, running
from tests.results.test_codec import LabelHatingCodec


async def test_bytes_label_under_the_msgpack_serializer(
    redis_url: str, unique_name: Callable[[str], str]
) -> None:
    pipeline = msgpack.packb({"steps": [{"task": "a"}, {"task": "b"}], "current": 0})
    async with redis_broker(redis_url, unique_name("p"), unique_name("q")) as broker:
        broker.with_serializer(MSGPackSerializer())

        @broker.task(task_name=unique_name("step"))
        async def step(x: int) -> int:
            return x * 2

        async with running(broker):
            label: Any = pipeline  # taskiq types labels as str | float; bytes are sent as such
            handle = await step.kicker().with_labels(pipeline=label).kiq(21)
            result = await handle.wait_result(timeout=10, check_interval=0.02)
            assert await get_status(broker, handle.task_id) is TaskStatus.SUCCESS

    assert not result.is_err, result.error
    assert result.return_value == 42
    assert result.labels["pipeline"] == pipeline


async def test_a_result_the_codec_cannot_store_ends_as_a_failure(
    redis_url: str, unique_name: Callable[[str], str]
) -> None:
    async with redis_broker(
        redis_url,
        unique_name("p"),
        unique_name("q"),
        result_options={"serializer": LabelHatingCodec()},
    ) as broker:

        @broker.task(task_name=unique_name("fine"))
        async def fine() -> int:
            return 1

        async with running(broker):
            handle = await fine.kicker().with_labels(note="x").kiq()
            result = await handle.wait_result(timeout=10, check_interval=0.02)
            record = await get_task_record(broker, handle.task_id)

    assert result.is_err
    assert record.status is TaskStatus.FAILURE
    assert record.error is not None
    assert record.error.type == "taskiq_kit.exceptions.ResultNotSerializableError"
    assert "UnicodeDecodeError" in record.error.message
