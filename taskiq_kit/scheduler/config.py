"""Declarative schedules: from TOML or YAML files, Python data, settings, and task labels.

A file holds a ``schedules`` table, either keyed by id or as an array with ``id`` fields::

    [schedules.cleanup]
    task = "app.tasks:cleanup"
    cron = "0 */10 * * * *"          # 6 fields: seconds first
    tz = "Europe/Berlin"

    [[schedules]]                     # (either form, not both in one file)
    id = "poll"
    task = "app.tasks:poll"
    interval = 5
    missed = "run_once"

Everything is validated on load; :class:`ScheduleConfigError` lists every problem with the file,
the schedule (id and position) and the field.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from taskiq.abc.broker import AsyncBroker

from taskiq_kit._compat import require
from taskiq_kit.exceptions import TaskiqKitError
from taskiq_kit.scheduler.models import Schedule, schedule_adapter


class ScheduleConfigError(TaskiqKitError, ValueError):
    """Schedules failed validation; the message lists each bad entry and field."""

    __template__ = "invalid schedules in {source}:\n{details}"
    source: str
    details: str


def _entries(data: Any, source: str) -> list[tuple[str, Any]]:
    """Turn the ``schedules`` value into (position label, raw entry) pairs, injecting ids."""
    if isinstance(data, Mapping):
        entries = []
        for key, value in data.items():
            entry = (
                {"id": key, **value} if isinstance(value, Mapping) and "id" not in value else value
            )
            entries.append((f"{key!r}", entry))
        return entries
    if isinstance(data, (list, tuple)):
        labelled = []
        for index, value in enumerate(data):
            name = value.get("id") if isinstance(value, Mapping) else None
            labelled.append((f"#{index} ({name!r})" if name else f"#{index}", value))
        return labelled
    raise ScheduleConfigError(
        source=source,
        details=f"  'schedules' must be a table keyed by id or a list, got {type(data).__name__}",
    )


def _describe(error: Mapping[str, Any]) -> str:
    # The first location item is the union tag (cron/interval/once); the rest is the field path.
    loc = [str(part) for part in error["loc"][1:]] if error["loc"] else []
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{'.'.join(loc)}: {message}" if loc else message


def parse_schedules(data: Any, *, source: str = "<schedules>") -> list[Schedule]:
    """Validate schedules given as data (a list, or a mapping keyed by id).

    Args:
        data: the value of ``schedules``.
        source: where the data came from, for error messages.

    Returns:
        The schedules, in the given order.

    Raises:
        ScheduleConfigError: listing every invalid entry, and duplicate ids.

    """
    problems: list[str] = []
    schedules: list[Schedule] = []
    seen: dict[str, str] = {}
    for label, raw in _entries(data, source):
        try:
            schedule = schedule_adapter.validate_python(raw)
        except ValidationError as exc:
            problems.extend(f"  schedule {label}: {_describe(err)}" for err in exc.errors())
            continue
        if schedule.id in seen:
            problems.append(f"  schedule {label}: id {schedule.id!r} repeats {seen[schedule.id]}")
            continue
        seen[schedule.id] = f"schedule {label}"
        schedules.append(schedule)
    if problems:
        raise ScheduleConfigError(source=source, details="\n".join(problems))
    return schedules


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        # tomllib is 3.11+; tomli is the same module for 3.10 (imported by name for mypy's sake).
        toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
        try:
            return toml.loads(text)
        except toml.TOMLDecodeError as exc:
            raise ScheduleConfigError(
                source=str(path), details=f"  not valid TOML: {exc}"
            ) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        yaml = require("yaml", extra="yaml", feature="YAML schedule files")
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScheduleConfigError(
                source=str(path), details=f"  not valid YAML: {exc}"
            ) from None
    raise ScheduleConfigError(
        source=str(path), details="  unknown file type: use .toml, .yaml or .yml"
    )


def load_schedules(path: str | Path) -> list[Schedule]:
    """Load and validate the ``schedules`` of a TOML or YAML file.

    Raises:
        ScheduleConfigError: for a missing or unreadable file, bad syntax, or invalid entries.
        MissingExtraError: for a YAML file without PyYAML (``pip install taskiq-kit[yaml]``).

    """
    file = Path(path)
    try:
        document = _read(file)
    except OSError as exc:
        raise ScheduleConfigError(source=str(file), details=f"  cannot read: {exc}") from None
    if not isinstance(document, Mapping) or "schedules" not in document:
        raise ScheduleConfigError(source=str(file), details="  no 'schedules' table found")
    return parse_schedules(document["schedules"], source=str(file))


def _offset_text(offset: timedelta) -> str:
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _label_entry(task_name: str, index: int, entry: Mapping[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": entry.get("schedule_id") or f"{task_name}#{index}",
        "task": task_name,
        "args": entry.get("args", []),
        "kwargs": entry.get("kwargs", {}),
        "labels": dict(entry.get("labels", {})),
    }
    if entry.get("cron") is not None:
        raw["cron"] = entry["cron"]
        offset = entry.get("cron_offset")
        if isinstance(offset, timedelta):
            raw["tz"] = _offset_text(offset)
        elif offset:
            raw["tz"] = str(offset)
    elif entry.get("interval") is not None:
        raw["interval"] = entry["interval"]
    elif entry.get("time") is not None:
        moment = entry["time"]
        if isinstance(moment, datetime) and moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)  # taskiq reads naive times as UTC
        raw["at"] = moment
    return raw


def schedules_from_labels(broker: AsyncBroker) -> list[Schedule]:
    """Read taskiq's ``schedule=[...]`` task labels as kit schedules.

    ``@broker.task(schedule=[{"cron": "*/5 * * * *", "args": [1]}])`` keeps working: ``cron``
    (with ``cron_offset`` as a zone name or a ``timedelta``), ``interval`` and ``time`` entries
    become cron, interval and once schedules. The id is the entry's ``schedule_id``, else
    ``"<task name>#<position>"`` (stable across restarts and replicas).

    Raises:
        ScheduleConfigError: when a label entry is invalid.

    """
    raw: list[dict[str, Any]] = []
    for task_name, task in broker.get_all_tasks().items():
        task_labels = {k: v for k, v in task.labels.items() if k != "schedule"}
        for index, entry in enumerate(task.labels.get("schedule") or []):
            if not isinstance(entry, Mapping) or not {"cron", "interval", "time"} & entry.keys():
                continue
            item = _label_entry(task_name, index, entry)
            item["labels"] = {**item["labels"], **task_labels}
            raw.append(item)
    return parse_schedules(raw, source="task labels")


class SchedulerSettings(BaseSettings):
    """Scheduler configuration from the environment (prefix ``TASKIQ_KIT_SCHEDULER_``).

    Attributes:
        redis_url: the Redis server the replicas coordinate through.
        name: the scheduler group; replicas with the same name share one leader.
        lease: seconds a leader holds the lease without renewing it; a dead leader is
            replaced within this time.
        grace: seconds a firing may be late and still count as on time (not missed).
        refresh: seconds between checks of the dynamic schedule store (and between a
            follower's attempts to take the lease).
        config: a TOML or YAML schedule file.
        schedules: schedules as JSON (a list, or an object keyed by id).

    """

    model_config = SettingsConfigDict(env_prefix="TASKIQ_KIT_SCHEDULER_", frozen=True)

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    name: str = "default"
    lease: float = Field(default=5.0, ge=0.5)
    grace: float = Field(default=1.0, ge=0)
    refresh: float = Field(default=1.0, gt=0)
    config: Path | None = None
    schedules: list[dict[str, Any]] | dict[str, dict[str, Any]] = Field(default_factory=list)

    def load(self) -> list[Schedule]:
        """Validate :attr:`schedules` and those in :attr:`config` (if set), file first.

        Raises:
            ScheduleConfigError: for invalid entries or ids used twice.

        """
        found: list[Schedule] = list(load_schedules(self.config)) if self.config else []
        found.extend(parse_schedules(self.schedules, source="settings"))
        return merge_schedules(found, source="settings")


def merge_schedules(schedules: Iterable[Schedule], *, source: str) -> list[Schedule]:
    """Check that ids are unique across several sources.

    Raises:
        ScheduleConfigError: naming the repeated ids.

    """
    seen: set[str] = set()
    repeated: list[str] = []
    result: list[Schedule] = []
    for schedule in schedules:
        if schedule.id in seen:
            repeated.append(schedule.id)
        seen.add(schedule.id)
        result.append(schedule)
    if repeated:
        raise ScheduleConfigError(
            source=source, details=f"  schedule ids used more than once: {sorted(set(repeated))}"
        )
    return result
