"""The delivery gate's checks, the taskiq log redaction and RabbitMQ's delivery count, offline."""

from __future__ import annotations

import json
import logging

import pytest

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.rabbit.messages import attempt_of
from taskiq_kit.rabbit.topology import QueueType
from taskiq_kit.redaction import PARAMS_LOGGER, RECEIVER_LOGGER, RedactingFilter
from taskiq_kit.validation import MAX_REASON, check_message, shown
from tests.delivery.corpus import SECRET, malformed, taskiq_body, valid


@pytest.fixture
def broker() -> KitBroker:
    broker = make_broker("memory://")

    @broker.task(task_name="echo")
    async def echo(number: int, text: str, token: str | None = None) -> None:
        return None

    return broker


def test_every_malformed_class_has_a_short_reason_without_its_text(broker: KitBroker) -> None:
    for kind, body in malformed():
        _, reason = check_message(body, parse=broker.formatter.loads, find_task=broker.find_task)
        assert reason, f"{kind}: passed the checks"
        assert len(reason) <= MAX_REASON, (kind, reason)
        assert SECRET not in reason, (kind, reason)
        assert "input_value" not in reason, (kind, reason)


def test_valid_messages_pass_and_keep_their_wire_labels(broker: KitBroker) -> None:
    for body in valid(3):
        message, reason = check_message(
            body, parse=broker.formatter.loads, find_task=broker.find_task
        )
        assert reason is None
        assert message is not None
        # Parsed on copies: taskiq parses the labels again, a bytes label must still be base64.
        assert message.labels == json.loads(body)["labels"]


@pytest.mark.parametrize(
    ("labels", "types", "reason"),
    [
        ({"delay": "abc"}, {"delay": 2}, "labels: 'delay' is not a valid int"),
        ({"f": "x"}, {"f": 4}, "labels: 'f' is not a valid float"),
        ({"odd": "1"}, {"odd": 0}, "labels: 'odd' has an unknown label type 0"),
        ({"ack_type": "later"}, None, "labels: 'ack_type' is not one of"),
        ({"ack_type": 3}, None, "labels: 'ack_type' is not one of"),
        ({"timeout": "soon"}, None, "labels: 'timeout' is not a number of seconds"),
        ({"timeout": "nan"}, None, "labels: 'timeout' is not a number of seconds"),
    ],
)
def test_label_reasons_name_the_label_not_its_value(
    broker: KitBroker,
    labels: dict[str, object],
    types: dict[str, int] | None,
    reason: str,
) -> None:
    body = json.dumps(taskiq_body(labels=labels, labels_types=types, args=[1, "x"])).encode()
    _, found = check_message(body, parse=broker.formatter.loads, find_task=broker.find_task)
    assert found is not None
    assert found.startswith(reason)


def test_accepted_label_values(broker: KitBroker) -> None:
    labels = {"ack_type": "WHEN_EXECUTED", "timeout": "2.5", "delay": "5"}
    body = json.dumps(taskiq_body(labels=labels, labels_types={"delay": 2})).encode()
    assert check_message(body, parse=broker.formatter.loads, find_task=broker.find_task)[1] is None


def test_shown_cuts_and_cleans_names() -> None:
    assert shown("a\nb") == "'a?b'"
    assert shown("x" * 100, 10) == repr("x" * 10 + "...")
    assert shown(7) == "'7'"


def _record(logger: str, msg: str, args: tuple[object, ...]) -> logging.LogRecord:
    error = ValueError(f"input_value={SECRET!r}")
    return logging.LogRecord(
        logger, logging.WARNING, __file__, 1, msg, args, (ValueError, error, None)
    )


def test_taskiq_warnings_lose_bodies_and_argument_text() -> None:
    filter_ = RedactingFilter()
    formatter = logging.Formatter()
    records = [
        _record(
            RECEIVER_LOGGER,
            "Cannot parse message: %s. Skipping execution.\n %s",
            (SECRET.encode(), ValueError(SECRET)),
        ),
        _record(
            PARAMS_LOGGER,
            "Can't parse argument %d for task %s. Reason: %s",
            (0, "t", ValueError(SECRET)),
        ),
        _record(
            PARAMS_LOGGER,
            "Can't parse argument %s for task %s. Reason: %s",
            ("k", "t", ValueError(SECRET)),
        ),
        _record(
            RECEIVER_LOGGER,
            'task "%s" is not found. Maybe you forgot to import it?',
            ("x" * 300 + SECRET,),
        ),
    ]
    for record in records:
        assert filter_.filter(record)
        text = formatter.format(record)
        assert SECRET not in text, text
        assert record.levelno == logging.WARNING


def test_other_records_pass_unchanged() -> None:
    record = logging.LogRecord("taskiq", logging.WARNING, __file__, 1, "%s", (SECRET,), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == SECRET


@pytest.mark.parametrize(
    ("headers", "queue_type", "redelivered", "attempt"),
    [
        ({"x-delivery-count": 100}, QueueType.QUORUM, False, 1),  # a publisher's header
        ({"x-delivery-count": 3}, QueueType.QUORUM, True, 4),
        ({}, QueueType.QUORUM, True, 2),
        ({"x-delivery-count": True}, QueueType.QUORUM, True, 2),
        ({"kit-attempt": 9}, QueueType.CLASSIC, False, 1),
        ({"x-delivery-count": 3}, QueueType.CLASSIC, True, 2),
    ],
)
def test_rabbitmq_attempt_trusts_only_the_server(
    headers: dict[str, object], queue_type: QueueType, redelivered: bool, attempt: int
) -> None:
    assert attempt_of(headers, queue_type, redelivered=redelivered) == attempt
