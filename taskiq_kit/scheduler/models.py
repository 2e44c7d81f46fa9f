"""What a schedule is: a task to kick plus a trigger (cron, fixed interval, or once).

Three kinds share one set of fields and differ by their trigger field; the kind is inferred from
which trigger field is present (``cron``, ``interval`` or ``at``), or given as ``kind``::

    {"id": "report", "task": "app.tasks:report", "cron": "0 30 7 * * mon-fri", "tz": "Europe/Paris"}
    {"id": "poll", "task": "app.tasks:poll", "interval": 5}
    {"id": "launch", "task": "app.tasks:launch", "at": "2030-01-01T00:00:00+00:00"}

Every kind computes its firing instants (unix seconds) with :meth:`next_fire`. Instants are a
pure function of the schedule, so every replica computes the same ones.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
)

from taskiq_kit._compat import require
from taskiq_kit.exceptions import InvalidDelayError
from taskiq_kit.labels import resolve_timing


def _croniter() -> Any:
    """The ``croniter`` class, imported on first use (only cron schedules need it).

    Imported by name: croniter ships no type information (its stubs are a separate package).
    """
    return require("croniter", extra="scheduler", feature="cron schedules").croniter


#: What to do with firings that fell due while no scheduler was running (beyond the grace time):
#: ``skip`` drops them; ``run_once`` kicks one catch-up run at once, however many were missed.
MissedPolicy = Literal["skip", "run_once"]

#: Schedule ids: letters, digits and ``_ . : @ / # -``, up to 200 characters.
SCHEDULE_ID_PATTERN = r"^[A-Za-z0-9_.:@/#-]{1,200}$"
_TRIGGER_FIELDS = {"cron": "cron", "interval": "interval", "at": "once"}
_TASK_ID_NAMESPACE = uuid.UUID("6f6b2a52-4d1c-5c43-9a0e-8f5f3b1d2c7e")


def fire_task_id(group: str, schedule_id: str, fire_at: float) -> str:
    """The task id of one firing: the same on every replica, so a duplicate kick is recognisable.

    Args:
        group: the scheduler group name.
        schedule_id: the schedule's id.
        fire_at: the firing instant, unix seconds.

    """
    instant = datetime.fromtimestamp(fire_at, timezone.utc).isoformat(timespec="microseconds")
    return uuid.uuid5(_TASK_ID_NAMESPACE, f"{group}\x00{schedule_id}\x00{instant}").hex


def parse_zone(name: str) -> tzinfo:
    """Read a time zone: an IANA name (``Europe/Berlin``), ``UTC``, or a fixed offset (``+02:00``).

    Raises:
        ValueError: when the zone is unknown.

    """
    text = name.strip()
    if text[:1] in "+-" and len(text) == 6 and text[3] == ":":
        try:
            hours, minutes = int(text[1:3]), int(text[4:6])
        except ValueError:
            pass
        else:
            sign = -1 if text[0] == "-" else 1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, ModuleNotFoundError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name like 'Europe/Berlin', 'UTC' "
            "or a fixed offset like '+02:00'"
        ) from None


class BaseSchedule(BaseModel):
    """Fields every kind of schedule has.

    Attributes:
        id: unique within a scheduler group; names the schedule in logs, the store and task ids.
        task: the registered task name (e.g. ``"app.tasks:cleanup"``).
        args: positional arguments of the task.
        kwargs: keyword arguments of the task.
        labels: labels sent with each kick (``expires``, ``delay``, priority, ...).
        missed: policy for firings missed while no scheduler ran (``skip`` or ``run_once``).
        enabled: a disabled (paused) schedule does not fire.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SCHEDULE_ID_PATTERN)
    task: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, Any] = Field(default_factory=dict)
    missed: MissedPolicy = "skip"
    enabled: bool = True

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, Any]) -> dict[str, Any]:
        if "schedule" in labels:
            raise ValueError("'schedule' is not a label of a schedule; give the trigger instead")
        try:
            resolve_timing(labels, now=time.time())
        except InvalidDelayError as exc:
            raise ValueError(str(exc)) from None
        return labels

    def next_fire(self, after: float) -> float | None:  # pragma: no cover - abstract
        """The first firing instant strictly after ``after`` (unix seconds), or ``None``."""
        raise NotImplementedError

    def last_fire(self, now: float) -> float | None:  # pragma: no cover - abstract
        """The latest firing instant at or before ``now``, or ``None``."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        """The trigger in words, for logs."""
        raise NotImplementedError


class CronSchedule(BaseSchedule):
    """Fires on a cron expression, optionally with seconds, in a time zone.

    Five fields are ``minute hour day month weekday``; six fields put *seconds first*
    (``*/10 * * * * *`` fires every 10 s), as Quartz, Spring and APScheduler do.
    Daylight-saving gaps and repeats are handled by croniter in the given zone.

    Attributes:
        cron: the expression.
        tz: IANA zone name, ``UTC``, or a fixed offset like ``+02:00``.

    """

    kind: Literal["cron"] = "cron"
    cron: str
    tz: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        text = " ".join(value.split())
        if len(text.split()) not in (5, 6):
            raise ValueError(
                f"cron {value!r} must have 5 fields (minute hour day month weekday) "
                "or 6 with seconds first (second minute hour day month weekday)"
            )
        try:
            iterator = _croniter()(text, time.time(), second_at_beginning=True)
            iterator.get_next(float)
        except ValueError as exc:  # croniter's errors are ValueErrors
            reason = (
                str(exc)
                .replace(f"[{text}] ", "")
                .replace("failed to find next date", "it never fires")
            )
            raise ValueError(f"invalid cron expression {value!r}: {reason}") from None
        return text

    @field_validator("tz")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        parse_zone(value)
        return value

    def next_fire(self, after: float) -> float | None:
        """The first cron instant strictly after ``after``."""
        start = datetime.fromtimestamp(after, parse_zone(self.tz))
        iterator = _croniter()(self.cron, start, second_at_beginning=True)
        return float(iterator.get_next(float))

    def last_fire(self, now: float) -> float | None:
        """The latest cron instant at or before ``now``."""
        start = datetime.fromtimestamp(now + 1e-3, parse_zone(self.tz))
        return float(_croniter()(self.cron, start, second_at_beginning=True).get_prev(float))

    def describe(self) -> str:
        """E.g. ``cron '*/5 * * * * *' (UTC)``."""
        return f"cron {self.cron!r} ({self.tz})"


class IntervalSchedule(BaseSchedule):
    """Fires every ``interval`` seconds on a fixed grid.

    The grid starts at ``anchor`` (default: the unix epoch), so a 5 s interval fires at
    :00, :05, :10, ... on every replica alike, whenever a scheduler started.

    Attributes:
        interval: seconds between firings, at least 0.1 (a ``timedelta`` works too).
        anchor: an aware instant the grid starts at; nothing fires before it.

    """

    kind: Literal["interval"] = "interval"
    interval: float = Field(ge=0.1, allow_inf_nan=False)
    anchor: AwareDatetime | None = None

    @field_validator("interval", mode="before")
    @classmethod
    def _from_timedelta(cls, value: Any) -> Any:
        return value.total_seconds() if isinstance(value, timedelta) else value

    def next_fire(self, after: float) -> float | None:
        """The first grid instant strictly after ``after``."""
        origin = self.anchor.timestamp() if self.anchor is not None else 0.0
        if after < origin:
            return origin
        steps = math.floor((after - origin) / self.interval) + 1
        instant = round(origin + steps * self.interval, 6)
        while instant <= after:
            steps += 1
            instant = round(origin + steps * self.interval, 6)
        return instant

    def last_fire(self, now: float) -> float | None:
        """The latest grid instant at or before ``now``."""
        origin = self.anchor.timestamp() if self.anchor is not None else 0.0
        if now < origin:
            return None
        instant = round(origin + math.floor((now - origin) / self.interval) * self.interval, 6)
        return instant if instant <= now else round(instant - self.interval, 6)

    def describe(self) -> str:
        """E.g. ``every 5 s``."""
        return f"every {self.interval:g} s"


class OnceSchedule(BaseSchedule):
    """Fires once, at ``at``.

    Attributes:
        at: an aware instant (ISO-8601 text with a zone, or a ``datetime`` with ``tzinfo``).

    """

    kind: Literal["once"] = "once"
    at: AwareDatetime

    def next_fire(self, after: float) -> float | None:
        """``at`` if it lies after ``after``, else ``None``."""
        instant = self.at.timestamp()
        return instant if instant > after else None

    def last_fire(self, now: float) -> float | None:
        """``at`` if it is not after ``now``."""
        instant = self.at.timestamp()
        return instant if instant <= now else None

    def describe(self) -> str:
        """E.g. ``once at 2030-01-01T00:00:00+00:00``."""
        return f"once at {self.at.isoformat()}"


def _kind_of(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return getattr(value, "kind", None)
    if not isinstance(value, dict):
        return None
    if "kind" in value:
        return str(value["kind"])
    kinds = [kind for field, kind in _TRIGGER_FIELDS.items() if field in value]
    return kinds[0] if len(kinds) == 1 else None


#: Any kind of schedule. Validate raw data with :data:`schedule_adapter`.
Schedule = Annotated[
    Annotated[CronSchedule, Tag("cron")]
    | Annotated[IntervalSchedule, Tag("interval")]
    | Annotated[OnceSchedule, Tag("once")],
    Discriminator(
        _kind_of,
        custom_error_type="schedule_kind",
        custom_error_message="give exactly one trigger: 'cron', 'interval' or 'at'",
    ),
]

#: Validates one schedule from raw data (``schedule_adapter.validate_python({...})``).
schedule_adapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)
