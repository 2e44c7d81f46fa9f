"""The ``delay``, ``eta`` and ``expires`` labels: one parser shared by every broker.

Users set them like any taskiq label::

    await my_task.kicker().with_labels(delay=30).kiq()
    await my_task.kicker().with_labels(eta="2030-01-01T09:00:00+01:00", expires=3600).kiq()
    await my_task.kicker().with_labels(**timing(delay=timedelta(minutes=5))).kiq()

At kick time :class:`TimingMiddleware` validates them and writes two absolute
instants (unix seconds) that brokers read: :data:`DUE_AT` and :data:`EXPIRES_AT`.
A bad value raises :class:`~taskiq_kit.exceptions.InvalidDelayError` (a ``ValueError``)
from ``kiq()`` itself.

Rules:

* ``delay``: seconds from now, a finite number ``>= 0``.
* ``eta``: an instant: unix epoch seconds, or ISO-8601 text *with* a time zone (an aware
  ``datetime`` works too). An eta in the past means "now".
* ``expires``: seconds from the kick (``> 0``), or an absolute instant like ``eta``
  (ISO-8601 text, an aware ``datetime``, or epoch seconds ``>= 1e9``).
* Nothing may lie more than :data:`MAX_HORIZON` (10 years) ahead.
* When both ``delay`` and ``eta`` are given the later instant wins (this is what makes
  taskiq's ``SmartRetryMiddleware`` backoff work on a task first kicked with an ``eta``).
* A task that would expire before it is due is refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.labels import LabelType, parse_label
from taskiq.message import TaskiqMessage

from taskiq_kit.exceptions import InvalidDelayError

DELAY = "delay"
ETA = "eta"
EXPIRES = "expires"
#: Absolute instant (unix seconds) before which the task must not run. Written at kick time.
DUE_AT = "kit_due_at"
#: Absolute instant (unix seconds) after which the task is dropped unrun. Written at kick time.
EXPIRES_AT = "kit_expires_at"
#: Instant (unix seconds) of the first kick of this task id; kept across retries.
KICKED_AT = "kit_kicked_at"
#: Retry counter label written by taskiq's retry middlewares.
RETRIES = "_retries"

#: The furthest ahead a delay, eta or expiry may lie.
MAX_HORIZON = 10 * 365.25 * 86_400
#: Numbers at least this large given to ``expires`` are absolute epoch seconds (2001-09-09).
EPOCH_THRESHOLD = 1e9


@dataclass(frozen=True, slots=True)
class Timing:
    """When a task may run: ``due_at`` and ``expires_at`` in unix seconds, or ``None``."""

    due_at: float | None = None
    expires_at: float | None = None

    def delay_from(self, now: float) -> float:
        """Seconds from ``now`` until the task is due (0 when due already)."""
        return 0.0 if self.due_at is None else max(0.0, self.due_at - now)

    def expired(self, now: float) -> bool:
        """Whether the task has expired at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


_NO_TIMING = Timing()


def _fail(label: str, value: object, reason: str) -> InvalidDelayError:
    return InvalidDelayError(label=label, value=value, reason=reason)


def _number(label: str, value: object) -> float | None:
    """Read ``value`` as a finite float, or return None when it is text that is not numeric."""
    if isinstance(value, bool):
        raise _fail(label, value, "expected a number of seconds, got a boolean")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if math.isnan(number) or math.isinf(number):
        raise _fail(label, value, "must be a finite number")
    return number


def parse_seconds(label: str, value: object) -> float:
    """Parse a relative duration in seconds (``delay``, relative ``expires``).

    Accepts numbers, numeric text and ``timedelta``.

    Raises:
        InvalidDelayError: when the value is not a finite, non-negative number of seconds.

    """
    if isinstance(value, timedelta):
        seconds: float | None = value.total_seconds()
    else:
        seconds = _number(label, value)
    if seconds is None:
        raise _fail(label, value, "expected a number of seconds")
    if seconds < 0:
        raise _fail(label, value, "must be >= 0")
    if seconds > MAX_HORIZON:
        raise _fail(label, value, "is more than 10 years ahead")
    return seconds


def parse_instant(label: str, value: object, *, now: float) -> float:
    """Parse an absolute instant: epoch seconds, ISO-8601 text with a zone, or an aware datetime.

    Raises:
        InvalidDelayError: when the value is not an instant, has no time zone, is negative, or
            lies more than 10 years ahead.

    """
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, str) and _number(label, value) is None:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _fail(
                label, value, "expected epoch seconds or ISO-8601 text with a time zone"
            ) from None
    else:
        moment = None
    if moment is not None:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise _fail(label, value, "has no time zone; add one, e.g. '+00:00'")
        epoch = moment.timestamp()
    else:
        number = _number(label, value)
        if number is None:
            raise _fail(label, value, "expected epoch seconds or ISO-8601 text with a time zone")
        epoch = number
    if epoch < 0:
        raise _fail(label, value, "must not be before 1970")
    if epoch - now > MAX_HORIZON:
        raise _fail(label, value, "is more than 10 years ahead")
    return epoch


def parse_expires(value: object, *, now: float) -> float:
    """Parse ``expires``: seconds from ``now``, or an absolute instant. Returns epoch seconds."""
    if isinstance(value, (datetime, str)) and _number(EXPIRES, value) is None:
        return parse_instant(EXPIRES, value, now=now)
    if isinstance(value, timedelta):
        seconds = parse_seconds(EXPIRES, value)
    else:
        number = _number(EXPIRES, value)
        if number is None:
            raise _fail(EXPIRES, value, "expected seconds or an absolute instant")
        if number >= EPOCH_THRESHOLD:
            return parse_instant(EXPIRES, number, now=now)
        seconds = parse_seconds(EXPIRES, number)
    if seconds <= 0:
        raise _fail(EXPIRES, value, "must be > 0 seconds")
    return now + seconds


def resolve_timing(labels: dict[str, Any], *, now: float) -> Timing:
    """Validate the timing labels of a task being kicked and return absolute instants.

    ``labels`` hold parsed values (not taskiq's wire strings). An existing
    :data:`EXPIRES_AT` is kept, so a retried task does not get a new lease on life.

    Raises:
        InvalidDelayError: for any invalid value, naming the label and the value.

    """
    due_at: float | None = None
    if labels.get(DELAY) is not None:
        due_at = now + parse_seconds(DELAY, labels[DELAY])
    if labels.get(ETA) is not None:
        eta = parse_instant(ETA, labels[ETA], now=now)
        due_at = eta if due_at is None else max(due_at, eta)
    expires_at: float | None = None
    if labels.get(EXPIRES_AT) is not None:
        expires_at = parse_instant(EXPIRES_AT, labels[EXPIRES_AT], now=now)
    elif labels.get(EXPIRES) is not None:
        expires_at = parse_expires(labels[EXPIRES], now=now)
        if expires_at <= now:
            raise _fail(EXPIRES, labels[EXPIRES], "lies in the past")
        if due_at is not None and expires_at <= due_at:
            raise _fail(EXPIRES, labels[EXPIRES], "the task would expire before it is due")
    return Timing(due_at=due_at, expires_at=expires_at)


def read_timing(labels: dict[str, Any]) -> Timing:
    """Read the absolute instants written at kick time (worker side; never raises).

    Works on wire labels (strings) and parsed labels alike; an unreadable value counts as absent.
    """
    if DUE_AT not in labels and EXPIRES_AT not in labels:
        return _NO_TIMING
    return Timing(
        due_at=label_float(labels.get(DUE_AT)), expires_at=label_float(labels.get(EXPIRES_AT))
    )


def label_float(value: object) -> float | None:
    """Read a float label value (wire string or number); ``None`` when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def timing(
    *,
    delay: float | timedelta | None = None,
    eta: float | datetime | str | None = None,
    expires: float | timedelta | datetime | str | None = None,
) -> dict[str, float | str]:
    """Build timing labels, Celery-style (``countdown`` is ``delay``).

    Example:
        ``await task.kicker().with_labels(**timing(delay=timedelta(minutes=5), expires=600)).kiq()``

    Raises:
        InvalidDelayError: when a value is invalid, at once rather than at kick time.

    """
    now = time.time()
    labels: dict[str, float | str] = {}
    if delay is not None:
        labels[DELAY] = parse_seconds(DELAY, delay)
    if eta is not None:
        labels[ETA] = parse_instant(ETA, eta, now=now)
    if expires is not None:
        if isinstance(expires, (datetime, str)):
            labels[EXPIRES] = (
                datetime.fromtimestamp(parse_expires(expires, now=now)).astimezone().isoformat()
            )
        else:
            labels[EXPIRES] = parse_expires(expires, now=now) - now
    resolve_timing(labels, now=now)
    return labels


_TIMING_INPUTS = (DELAY, ETA, EXPIRES, EXPIRES_AT, KICKED_AT)


def _parsed_labels(message: TaskiqMessage) -> dict[str, Any]:
    """The timing labels of a message being sent, taskiq's wire strings turned back into values."""
    types = message.labels_types or {}
    parsed: dict[str, Any] = {}
    for name in _TIMING_INPUTS:
        if name not in message.labels:
            continue
        value = message.labels[name]
        label_type = types.get(name)
        if label_type is None or label_type == LabelType.ANY:
            parsed[name] = value
            continue
        try:
            parsed[name] = parse_label(value, label_type)
        except (TypeError, ValueError):
            parsed[name] = value
    return parsed


_FLOAT_TYPE = LabelType.FLOAT.value


def _set_float_label(message: TaskiqMessage, name: str, value: float | None) -> None:
    if value is None:
        message.labels.pop(name, None)
        if message.labels_types is not None:
            message.labels_types.pop(name, None)
        return
    message.labels[name] = repr(value)
    if message.labels_types is None:
        message.labels_types = {}
    message.labels_types[name] = _FLOAT_TYPE


class TimingMiddleware(TaskiqMiddleware):
    """Validates timing labels at kick time and writes :data:`DUE_AT` / :data:`EXPIRES_AT`.

    Installed by every kit broker. Runs in ``pre_send``, so an invalid value raises from
    ``kiq()`` as :class:`~taskiq_kit.exceptions.InvalidDelayError`, not as a send error.
    """

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Validate and normalise the timing labels of ``message``."""
        now = time.time()
        labels = _parsed_labels(message)
        if not labels:  # the common case: no timing at all
            _set_float_label(message, DUE_AT, None)
            _set_float_label(message, KICKED_AT, now)
            return message
        resolved = resolve_timing(labels, now=now)
        _set_float_label(message, DUE_AT, resolved.due_at)
        _set_float_label(message, EXPIRES_AT, resolved.expires_at)
        if labels.get(KICKED_AT) is None:
            _set_float_label(message, KICKED_AT, now)
        return message
