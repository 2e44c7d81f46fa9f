"""Flow-control options of a task: what users write, checked once, and what travels in the message.

Users declare them as task labels::

    @broker.task(rate_limit="100/m")
    @broker.task(rate_limit=RateLimit(10, per=1.0, key=lambda customer_id, **_: customer_id))
    @broker.task(concurrency=3)
    @broker.task(concurrency=Concurrency(1, key=lambda account, **_: account))
    @broker.task(unique_for=60)
    @broker.task(debounce=Debounce(2.0, key=lambda doc_id, **_: doc_id))

They are checked when the task is defined (:func:`read_policy`); the key functions stay in the
task definition and run at kick time (:func:`kick_labels`), in the kicking process, with the
task's own arguments. What travels in the message are plain labels (:data:`WIRE_LABELS`), so a
worker needs nothing but the message to enforce the limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskiq_kit.exceptions import FlowKeyError, FlowOptionTypeError, InvalidFlowOptionError

#: A key function: called with the task's arguments, returns the key the limit applies to.
KeyFunc = Callable[..., object]

RATE_LIMIT = "rate_limit"
CONCURRENCY = "concurrency"
UNIQUE_FOR = "unique_for"
DEBOUNCE = "debounce"
#: The task options flow control reads (task labels).
OPTIONS = (RATE_LIMIT, CONCURRENCY, UNIQUE_FOR, DEBOUNCE)

#: Wire labels, written at kick time. :data:`FLOW` marks a message that carries any of them.
FLOW = "kit_flow"
RATE = "kit_rate"  # "<interval seconds> <tolerance seconds> <shown limit>"
RATE_KEY = "kit_rate_key"
RESERVED = "kit_rate_reserved"  # the instant of the rate slot this message holds
SLOTS = "kit_slots"  # "<limit> <lease seconds>"
SLOT_KEY = "kit_slot_key"
DEBOUNCE_KEY = "kit_debounce_key"
DEFERRALS = "kit_deferrals"  # how many times flow control re-scheduled this message
WIRE_LABELS = (FLOW, RATE, RATE_KEY, RESERVED, SLOTS, SLOT_KEY, DEBOUNCE_KEY, DEFERRALS)

#: The longest period or window accepted (a day is plenty for a rate; a week for uniqueness).
MAX_PERIOD = 7 * 86_400.0
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_RATE_TEXT = re.compile(
    r"^\s*(?P<limit>\d+)\s*/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>[smhd]?)\s*$", re.IGNORECASE
)


def _positive_int(name: str, value: object, *, task: str, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowOptionTypeError(
            option=option, value=value, task=task, reason=f"{name} must be an int"
        )
    if value < 1:
        raise InvalidFlowOptionError(
            option=option, value=value, task=task, reason=f"{name} must be >= 1"
        )
    return value


def _seconds(name: str, value: object, *, task: str, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlowOptionTypeError(
            option=option, value=value, task=task, reason=f"{name} must be a number of seconds"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidFlowOptionError(
            option=option, value=value, task=task, reason=f"{name} must be > 0 seconds"
        )
    if seconds > MAX_PERIOD:
        raise InvalidFlowOptionError(
            option=option, value=value, task=task, reason=f"{name} must be at most a week"
        )
    return seconds


def _key_func(key: object, *, task: str, option: str) -> KeyFunc | None:
    if key is not None and not callable(key):
        raise FlowOptionTypeError(
            option=option, value=key, task=task, reason="key must be a callable or None"
        )
    return key


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``per`` seconds, spaced evenly (GCRA), across every worker.

    Args:
        limit: runs allowed per period (an int >= 1).
        per: the period, in seconds (> 0).
        key: called with the task's arguments at kick time; each key gets its own limit
            (``None``: one limit for the task).
        burst: runs that may start back to back after a quiet spell (1: always evenly spaced).

    """

    limit: int
    per: float = 1.0
    key: KeyFunc | None = None
    burst: int = 1

    def checked(self, task: str) -> RateLimit:
        """This limit, its values checked.

        Raises:
            InvalidFlowOptionError: for a limit or burst below 1, or a period not > 0.
            FlowOptionTypeError: for values of the wrong type.

        """
        _positive_int("limit", self.limit, task=task, option=RATE_LIMIT)
        _seconds("per", self.per, task=task, option=RATE_LIMIT)
        _positive_int("burst", self.burst, task=task, option=RATE_LIMIT)
        _key_func(self.key, task=task, option=RATE_LIMIT)
        return self

    @property
    def interval(self) -> float:
        """Seconds between two runs at the limit."""
        return float(self.per) / self.limit

    @property
    def shown(self) -> str:
        """The limit as text, e.g. ``100/60s``."""
        return f"{self.limit}/{float(self.per):g}s"

    @classmethod
    def parse(cls, text: str, *, task: str = "?") -> RateLimit:
        """Read ``"N/s"``, ``"N/m"``, ``"N/h"``, ``"N/d"`` or ``"N/<seconds>"`` (e.g. ``"5/2.5s"``).

        Raises:
            InvalidFlowOptionError: for text of another form, or a zero limit or period.

        """
        match = _RATE_TEXT.match(text)
        if match is None:
            raise InvalidFlowOptionError(
                option=RATE_LIMIT,
                value=text,
                task=task,
                reason="expected 'N/s', 'N/m', 'N/h', 'N/d' or 'N/<seconds>', e.g. '100/m'",
            )
        amount = match["amount"]
        unit = match["unit"].lower()
        if amount is None and not unit:
            raise InvalidFlowOptionError(
                option=RATE_LIMIT, value=text, task=task, reason="the period is missing"
            )
        per = (1.0 if amount is None else float(amount)) * _UNITS[unit]
        return cls(int(match["limit"]), per=per).checked(task)


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` runs at once, across every worker.

    Args:
        limit: runs allowed at once (an int >= 1).
        key: called with the task's arguments at kick time; each key gets its own slots.
        lease: seconds a slot outlives its worker when the worker dies without releasing it;
            a live worker renews its slots every third of that.

    """

    limit: int
    key: KeyFunc | None = None
    lease: float = 30.0

    def checked(self, task: str) -> Concurrency:
        """This limit, its values checked (see :meth:`RateLimit.checked`)."""
        _positive_int("limit", self.limit, task=task, option=CONCURRENCY)
        lease = _seconds("lease", self.lease, task=task, option=CONCURRENCY)
        if lease < 1:
            raise InvalidFlowOptionError(
                option=CONCURRENCY, value=self.lease, task=task, reason="lease must be >= 1 s"
            )
        _key_func(self.key, task=task, option=CONCURRENCY)
        return self


@dataclass(frozen=True, slots=True)
class Unique:
    """While a kick of the same key is queued, delayed or running, kicks return its handle.

    Args:
        seconds: the longest the claim lasts (it ends earlier, once the task is final).
        key: called with the task's arguments; ``None``: the arguments themselves.

    """

    seconds: float
    key: KeyFunc | None = None

    def checked(self, task: str) -> Unique:
        """This option, its values checked (see :meth:`RateLimit.checked`)."""
        _seconds("unique_for", self.seconds, task=task, option=UNIQUE_FOR)
        _key_func(self.key, task=task, option=UNIQUE_FOR)
        return self


@dataclass(frozen=True, slots=True)
class Debounce:
    """Kicks of the same key within ``seconds`` of each other: only the last one runs.

    Each kick is delayed by ``seconds``; a later kick of the same key supersedes it (the
    earlier one ends ``aborted``, its record's ``reason`` saying ``superseded by <task id>``).

    Args:
        seconds: the quiet time after the last kick before it runs.
        key: called with the task's arguments; ``None``: the arguments themselves.

    """

    seconds: float
    key: KeyFunc | None = None

    def checked(self, task: str) -> Debounce:
        """This option, its values checked (see :meth:`RateLimit.checked`)."""
        _seconds("debounce", self.seconds, task=task, option=DEBOUNCE)
        _key_func(self.key, task=task, option=DEBOUNCE)
        return self


@dataclass(frozen=True, slots=True)
class FlowPolicy:
    """The flow-control options of one task, checked."""

    rate: RateLimit | None = None
    concurrency: Concurrency | None = None
    unique: Unique | None = None
    debounce: Debounce | None = None

    def __bool__(self) -> bool:
        return any((self.rate, self.concurrency, self.unique, self.debounce))


def _rate(value: object, task: str) -> RateLimit:
    if isinstance(value, RateLimit):
        return value.checked(task)
    if isinstance(value, str):
        return RateLimit.parse(value, task=task)
    raise FlowOptionTypeError(
        option=RATE_LIMIT, value=value, task=task, reason="expected text like '100/m' or RateLimit"
    )


def _concurrency(value: object, task: str) -> Concurrency:
    if isinstance(value, Concurrency):
        return value.checked(task)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Concurrency(value).checked(task)
    raise FlowOptionTypeError(
        option=CONCURRENCY, value=value, task=task, reason="expected an int or Concurrency"
    )


def _window(value: object, task: str, option: str) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return _seconds(option, value, task=task, option=option)


def read_policy(labels: Mapping[str, Any], task: str) -> FlowPolicy:
    """The flow-control options among a task's ``labels``, checked.

    Raises:
        InvalidFlowOptionError: for a value that cannot be honoured (a ``ValueError``).
        FlowOptionTypeError: for a value of the wrong type (also a ``TypeError``).

    """
    rate = labels.get(RATE_LIMIT)
    slots = labels.get(CONCURRENCY)
    unique = labels.get(UNIQUE_FOR)
    debounce = labels.get(DEBOUNCE)
    if unique is not None and debounce is not None:
        raise InvalidFlowOptionError(
            option=DEBOUNCE,
            value=debounce,
            task=task,
            reason="a task is either unique_for (the first kick wins) or debounced (the last "
            "kick wins), not both",
        )
    return FlowPolicy(
        rate=None if rate is None else _rate(rate, task),
        concurrency=None if slots is None else _concurrency(slots, task),
        unique=None
        if unique is None
        else unique.checked(task)
        if isinstance(unique, Unique)
        else Unique(_window(unique, task, UNIQUE_FOR)),
        debounce=None
        if debounce is None
        else debounce.checked(task)
        if isinstance(debounce, Debounce)
        else Debounce(_window(debounce, task, DEBOUNCE)),
    )


def definition_labels(policy: FlowPolicy) -> dict[str, str]:
    """The options as plain text labels (what the task keeps; key functions stay in the policy)."""
    labels: dict[str, str] = {}
    if policy.rate is not None:
        labels[RATE_LIMIT] = policy.rate.shown
    if policy.concurrency is not None:
        labels[CONCURRENCY] = str(policy.concurrency.limit)
    if policy.unique is not None:
        labels[UNIQUE_FOR] = repr(float(policy.unique.seconds))
    if policy.debounce is not None:
        labels[DEBOUNCE] = repr(float(policy.debounce.seconds))
    return labels


def call_key(
    func: KeyFunc | None, option: str, task: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """The key ``func`` gives for these arguments (``None``: the arguments' own digest).

    Raises:
        FlowKeyError: when ``func`` raises, or returns something other than a str, int or float.

    """
    if func is None:
        return arguments_digest(args, kwargs)
    try:
        key = func(*args, **kwargs)
    except Exception as exc:
        raise FlowKeyError(option=option, task=task, reason=f"{type(exc).__name__}: {exc}") from exc
    if isinstance(key, bool) or not isinstance(key, (str, int, float)):
        raise FlowKeyError(option=option, task=task, reason=f"it returned {key!r}")
    return str(key)


def arguments_digest(args: tuple[Any, ...] | list[Any], kwargs: Mapping[str, Any]) -> str:
    """A short digest of a call's arguments (JSON, keys sorted; other values by ``repr``)."""
    text = json.dumps([list(args), dict(kwargs)], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def kick_labels(
    policy: FlowPolicy,
    labels: Mapping[str, Any],
    task: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> dict[str, str]:
    """The wire labels of one kick: the limits and the keys computed from the arguments.

    ``labels`` are the kick's labels: a ``rate_limit`` or ``concurrency`` given at kick time
    (``with_labels``) overrides the task's, and is checked here.

    Raises:
        InvalidFlowOptionError: for an invalid option given at kick time.
        FlowKeyError: when a key function fails.

    """
    rate = policy.rate
    if labels.get(RATE_LIMIT) not in (None, rate.shown if rate else None):
        rate = _rate(labels[RATE_LIMIT], task)
    slots = policy.concurrency
    given = labels.get(CONCURRENCY)
    if given is not None and str(given) != (str(slots.limit) if slots else None):
        slots = _concurrency(given, task)
    wire: dict[str, str] = {}
    if rate is not None:
        tolerance = rate.interval * (rate.burst - 1)
        wire[RATE] = f"{rate.interval!r} {tolerance!r} {rate.shown}"
        wire[RATE_KEY] = _scoped(task, rate.key, RATE_LIMIT, args, kwargs)
    if slots is not None:
        wire[SLOTS] = f"{slots.limit} {float(slots.lease)!r}"
        wire[SLOT_KEY] = _scoped(task, slots.key, CONCURRENCY, args, kwargs)
    if wire:
        wire[FLOW] = "1"
    return wire


def _scoped(
    task: str, func: KeyFunc | None, option: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str:
    """The store key of a limit: the task's name, and the key function's value when there is one."""
    if func is None:
        return task
    return f"{task}\x1f{call_key(func, option, task, args, kwargs)}"


@dataclass(frozen=True, slots=True)
class WireRate:
    """A rate limit as a worker reads it from a message."""

    interval: float
    tolerance: float
    shown: str
    key: str


@dataclass(frozen=True, slots=True)
class WireSlots:
    """A concurrency limit as a worker reads it from a message."""

    limit: int
    lease: float
    key: str


def read_rate(labels: Mapping[str, Any]) -> WireRate | None:
    """The rate limit a message carries (``None``: none, or unreadable)."""
    text, key = labels.get(RATE), labels.get(RATE_KEY)
    if not isinstance(text, str) or not isinstance(key, str):
        return None
    parts = text.split(" ", 2)
    try:
        interval, tolerance = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        return None
    if not (math.isfinite(interval) and interval > 0 and math.isfinite(tolerance)):
        return None
    return WireRate(interval, max(0.0, tolerance), parts[2] if len(parts) > 2 else "", key)


def read_slots(labels: Mapping[str, Any]) -> WireSlots | None:
    """The concurrency limit a message carries (``None``: none, or unreadable)."""
    text, key = labels.get(SLOTS), labels.get(SLOT_KEY)
    if not isinstance(text, str) or not isinstance(key, str):
        return None
    parts = text.split(" ")
    try:
        limit, lease = int(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        return None
    if limit < 1 or not (math.isfinite(lease) and lease > 0):
        return None
    return WireSlots(limit, lease, key)
