"""Malformed messages on the real transports: dead-lettered with a reason, never acked unseen,
never logged; the valid ones beside them run, and the worker keeps consuming."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from taskiq import Context, TaskiqDepends

from taskiq_kit import KitBroker
from taskiq_kit.redis import RedisBroker
from taskiq_kit.validation import MAX_REASON
from tests.brokers import in_process_worker
from tests.delivery.corpus import SECRET, malformed, taskiq_body, valid
from tests.delivery.harness import (
    TRANSPORTS,
    eventually,
    queue_is_empty,
    read_dead_letters,
    send_raw,
    started,
)

pytestmark = [pytest.mark.redis, pytest.mark.rabbit]


def _echo(broker: KitBroker, ran: list[object], blobs: list[object]) -> None:
    @broker.task(task_name="echo")
    async def echo(
        number: int, text: str, token: str | None = None, context: Context = TaskiqDepends()
    ) -> None:
        ran.append(number)
        blob = context.message.labels.get("blob")
        if blob is not None:
            blobs.append(blob)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_malformed_message_is_dead_lettered_with_a_reason_and_none_is_logged(
    transport: str,
    unique_name: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    redis_url: str,
    amqp_url: str,
) -> None:
    caplog.set_level(logging.INFO)
    corpus = malformed()
    good = valid(20)
    ran: list[object] = []
    blobs: list[object] = []
    seen: list[tuple[bytes, str]] = []
    async with started(transport, unique_name("fuzz")) as broker:
        _echo(broker, ran, blobs)
        await send_raw(broker, [body for _, body in corpus] + good)
        expected = len(corpus)
        if isinstance(broker, RedisBroker):
            await broker.client.xadd(broker.keys.ready, {"other": SECRET})  # no "data" field
            expected += 1

        async def done() -> bool:
            return len(ran) == len(good) and len(await read_dead_letters(broker, seen)) >= expected

        async with in_process_worker(broker):
            await eventually(done, 30, "the valid messages to run and the others to be dead")
        await broker.shutdown()  # anything left unsettled goes back to the queue now
        assert await queue_is_empty(broker), "a message was left unsettled"
        dead = await read_dead_letters(broker, seen)
    assert len(dead) == expected, [reason for _, reason in dead]
    reasons = dict(dead)
    for kind, body in corpus:
        assert body in reasons, f"{kind}: not in the dead letters"
        reason = reasons[body]
        assert reason, kind
        assert len(reason) <= MAX_REASON, (kind, reason)
        assert SECRET not in reason, (kind, reason)
        assert "input_value" not in reason, (kind, reason)
    if isinstance(broker, RedisBroker):
        assert reasons[b""] == "stream entry without a 'data' field"
    assert "labels: 'delay' is not a valid int" in reasons.values()
    assert "labels: 'odd' has an unknown label type 99" in reasons.values()
    # The valid ones ran with their labels parsed once (the gate parsed copies).
    assert sorted(n for n in ran if isinstance(n, int)) == [-1, *range(20)]
    assert SECRET in ran  # the argument taskiq could not convert, passed as it came
    assert blobs == [SECRET.encode()]
    formatter = logging.Formatter()
    for record in caplog.records:
        if record.levelno >= logging.WARNING:
            text = formatter.format(record)
            assert SECRET not in text, text
            assert "input_value" not in text, text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sixty_unknown_ack_types_do_not_stall_a_fresh_worker(
    transport: str, unique_name: Callable[[str], str], redis_url: str, amqp_url: str
) -> None:
    ran: list[object] = []
    seen: list[tuple[bytes, str]] = []
    async with started(transport, unique_name("ack")) as broker:
        _echo(broker, ran, [])
        bogus = [json.dumps(taskiq_body(labels={"ack_type": "bogus"})).encode() for _ in range(60)]
        await send_raw(broker, bogus)
        echo = broker.find_task("echo")
        assert echo is not None
        for number in range(100):
            await echo.kiq(number, "valid")

        async def done() -> bool:
            return len(ran) == 100 and len(await read_dead_letters(broker, seen)) == 60

        async with in_process_worker(broker):
            await eventually(done, 30, "100 valid tasks to run and 60 bogus ones to be dead")
        dead = await read_dead_letters(broker, seen)
    assert sorted(n for n in ran if isinstance(n, int)) == list(range(100))
    assert {reason for _, reason in dead} == {
        "labels: 'ack_type' is not one of when_received, when_executed, when_saved, manual"
    }
