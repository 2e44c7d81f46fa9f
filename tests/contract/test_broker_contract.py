"""The broker contract: every kit broker (memory, RabbitMQ, Redis) passes these, against real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from taskiq import SmartRetryMiddleware, TaskiqMiddleware
from taskiq.message import BrokerMessage, TaskiqMessage

from taskiq_kit import InvalidDelayError, TaskNotFoundError, TaskStatus, get_status, get_task_record
from taskiq_kit.labels import EXPIRES_AT
from tests.brokers import BrokerHarness


async def wait_for_status(
    harness: BrokerHarness, task_id: str, status: TaskStatus, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    last: TaskStatus | None = None
    while time.monotonic() < deadline:
        try:
            last = await get_status(harness.broker, task_id)
        except TaskNotFoundError:
            last = None
        if last is status:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"task {task_id} is {last}, expected {status}")


async def test_task_runs_and_records_success(harness: BrokerHarness) -> None:
    @harness.broker.task(task_name=f"add-{uuid.uuid4().hex}")
    async def add(a: int, b: int) -> int:
        return a + b

    task = await add.kiq(2, 3)
    result = await task.wait_result(timeout=10)
    assert result.return_value == 5
    await wait_for_status(harness, task.task_id, TaskStatus.SUCCESS)
    record = await get_task_record(harness.broker, task.task_id)
    assert record.task_name == add.task_name
    assert record.attempt == 1
    assert record.worker is not None
    assert record.kicked_at is not None
    assert record.started_at is not None
    assert record.finished_at is not None
    assert record.kicked_at <= record.started_at <= record.finished_at


async def test_sync_task_runs(harness: BrokerHarness) -> None:
    @harness.broker.task(task_name=f"sync-{uuid.uuid4().hex}")
    def upper(text: str) -> str:
        return text.upper()

    task = await upper.kiq("héllo ✓")
    assert (await task.wait_result(timeout=10)).return_value == "HÉLLO ✓"


async def test_failure_is_recorded_with_error_details(harness: BrokerHarness) -> None:
    @harness.broker.task(task_name=f"boom-{uuid.uuid4().hex}")
    async def boom() -> None:
        raise KeyError("no such thing")

    task = await boom.kiq()
    result = await task.wait_result(timeout=10)
    assert result.is_err
    await wait_for_status(harness, task.task_id, TaskStatus.FAILURE)
    record = await get_task_record(harness.broker, task.task_id)
    assert record.error is not None
    assert record.error.type == "KeyError"
    assert "no such thing" in record.error.message
    assert record.error.traceback is not None
    assert "raise KeyError" in record.error.traceback


async def test_delayed_task_never_runs_early(harness: BrokerHarness) -> None:
    ran_at: list[float] = []

    @harness.broker.task(task_name=f"delayed-{uuid.uuid4().hex}")
    async def stamp() -> None:
        ran_at.append(time.time())

    kicked = time.time()
    task = await stamp.kicker().with_labels(delay=2).kiq()
    assert await get_status(harness.broker, task.task_id) is TaskStatus.SCHEDULED
    record = await get_task_record(harness.broker, task.task_id)
    assert record.due_at is not None
    assert record.due_at == pytest.approx(kicked + 2, abs=0.2)
    await task.wait_result(timeout=10)
    assert len(ran_at) == 1
    assert ran_at[0] >= record.due_at, "the task ran before its due time"
    assert ran_at[0] - record.due_at < 1.5, "the task ran far too late"


async def test_short_delay_is_not_blocked_by_a_long_one(harness: BrokerHarness) -> None:
    ran: dict[str, float] = {}

    @harness.broker.task(task_name=f"hol-{uuid.uuid4().hex}")
    async def mark(name: str) -> None:
        ran[name] = time.time()

    start = time.time()
    await mark.kicker().with_labels(delay=8).kiq("long")
    short = await mark.kicker().with_labels(delay=1).kiq("short")
    await short.wait_result(timeout=6)
    assert "long" not in ran
    assert 1.0 <= ran["short"] - start < 2.5


async def test_eta_as_iso_text(harness: BrokerHarness) -> None:
    ran_at: list[float] = []

    @harness.broker.task(task_name=f"eta-{uuid.uuid4().hex}")
    async def stamp() -> None:
        ran_at.append(time.time())

    due = time.time() + 1.5
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due)) + f".{int(due % 1 * 1e6):06d}+00:00"
    task = await stamp.kicker().with_labels(eta=iso).kiq()
    await task.wait_result(timeout=10)
    assert ran_at[0] >= due - 0.001


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"delay": -1}, "must be >= 0"),
        ({"delay": "soon"}, "expected a number"),
        ({"eta": "2030-01-01T00:00:00"}, "no time zone"),
        ({"expires": 0}, "must be > 0"),
        ({"delay": 10, "expires": 5}, "expire before it is due"),
    ],
)
async def test_invalid_timing_is_refused_at_kick(
    harness: BrokerHarness, labels: dict[str, Any], fragment: str
) -> None:
    @harness.broker.task(task_name=f"never-{uuid.uuid4().hex}")
    async def never() -> None:
        raise AssertionError("must not run")

    with pytest.raises(InvalidDelayError, match=fragment):
        await never.kicker().with_labels(**labels).kiq()


async def test_expired_task_does_not_run(harness: BrokerHarness) -> None:
    ran: list[int] = []

    @harness.broker.task(task_name=f"expired-{uuid.uuid4().hex}")
    async def work() -> None:
        ran.append(1)

    # An expiry already passed when the worker sees the message (as after a long outage).
    task = await work.kicker().with_labels(**{EXPIRES_AT: time.time() - 1}).kiq()
    await wait_for_status(harness, task.task_id, TaskStatus.EXPIRED)
    await asyncio.sleep(0.2)
    assert ran == []


async def test_unparseable_message_goes_to_dead_letters(harness: BrokerHarness) -> None:
    body = b"\x00 this is not a taskiq message " + uuid.uuid4().hex.encode()
    await harness.broker.kick(
        BrokerMessage(task_id=uuid.uuid4().hex, task_name="x", message=body, labels={})
    )
    await _wait_dead_letter(harness, body, "unparseable")


async def test_unknown_task_goes_to_dead_letters(harness: BrokerHarness) -> None:
    @harness.broker.task(task_name=f"known-{uuid.uuid4().hex}")
    async def known() -> None:
        return None

    name = f"unknown-{uuid.uuid4().hex}"
    message = harness.broker.formatter.dumps(known.kicker().with_labels()._prepare_message())
    message = message.model_copy(update={"task_name": name})
    body = message.message.replace(known.task_name.encode(), name.encode())
    await harness.broker.kick(message.model_copy(update={"message": body}))
    await _wait_dead_letter(harness, body, "unknown task")
    # The worker is still alive and working.
    assert (await (await known.kiq()).wait_result(timeout=10)).is_err is False


async def _wait_dead_letter(harness: BrokerHarness, body: bytes, reason: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for data, why in await harness.read_dead_letters():
            if data == body:
                assert reason in why
                return
        await asyncio.sleep(0.05)
    pytest.fail("the message did not reach the dead-letter queue")


async def test_smart_retry_backoff_really_delays(harness: BrokerHarness) -> None:
    harness.broker.add_middlewares(SmartRetryMiddleware(default_retry_count=3, default_delay=1))
    attempts: list[float] = []

    @harness.broker.task(task_name=f"flaky-{uuid.uuid4().hex}", retry_on_error=True, max_retries=3)
    async def flaky() -> str:
        attempts.append(time.time())
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    task = await flaky.kiq()
    await wait_for_status(harness, task.task_id, TaskStatus.SUCCESS, timeout=15)
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 1.0, "the retry did not wait for its backoff delay"
    record = await get_task_record(harness.broker, task.task_id)
    assert record.attempt == 2
    assert (await task.wait_result(timeout=5)).return_value == "ok"


async def test_unknown_id_raises_not_found(harness: BrokerHarness) -> None:
    with pytest.raises(TaskNotFoundError):
        await get_status(harness.broker, uuid.uuid4().hex)


class _CaptureSent(TaskiqMiddleware):
    """Keeps the last message sent, as it left (after the kit's labels were added)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: TaskiqMessage | None = None

    def post_send(self, message: TaskiqMessage) -> None:
        self.sent = message


async def test_duplicate_of_a_completed_kick_does_not_run_again(harness: BrokerHarness) -> None:
    capture = _CaptureSent()
    harness.broker.add_middlewares(capture)
    runs: list[str] = []

    @harness.broker.task(task_name=f"once-{uuid.uuid4().hex}")
    async def once(tag: str) -> str:
        runs.append(tag)
        return tag

    task = await once.kiq("a")
    await wait_for_status(harness, task.task_id, TaskStatus.SUCCESS)
    assert capture.sent is not None
    # The same message again: a duplicate send, or a redelivery after a lost acknowledgement.
    await harness.broker.kick(harness.broker.formatter.dumps(capture.sent))
    await asyncio.sleep(1.0)
    assert runs == ["a"]
    assert await get_status(harness.broker, task.task_id) is TaskStatus.SUCCESS
    # A new kick of the same id on purpose runs: it is a different kick.
    again = await once.kicker().with_task_id(task.task_id).kiq("b")
    await wait_for_status(harness, again.task_id, TaskStatus.SUCCESS)
    await asyncio.sleep(0.5)
    assert runs == ["a", "b"]
