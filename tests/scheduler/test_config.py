"""Schedules from files, data, settings and labels: valid ones load, bad ones say where and why."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from taskiq_kit import MemoryBroker, TaskiqKitError
from taskiq_kit.scheduler import (
    CronSchedule,
    IntervalSchedule,
    OnceSchedule,
    ScheduleConfigError,
    SchedulerSettings,
    fire_task_id,
    load_schedules,
    parse_schedules,
    schedule_adapter,
    schedules_from_labels,
)

GOOD_TOML = """
[schedules.report]
task = "app.tasks:report"
cron = "0 30 7 * * mon-fri"
tz = "Europe/Paris"
labels = { expires = 600 }

[schedules.poll]
task = "app.tasks:poll"
interval = 5
missed = "run_once"
kwargs = { source = "api" }

[schedules.launch]
task = "app.tasks:launch"
at = 2030-01-01T00:00:00Z
"""


def test_toml_table_form(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(GOOD_TOML)
    report, poll, launch = load_schedules(path)
    assert isinstance(report, CronSchedule)
    assert (report.id, report.cron, report.tz, report.labels) == (
        "report",
        "0 30 7 * * mon-fri",
        "Europe/Paris",
        {"expires": 600},
    )
    assert isinstance(poll, IntervalSchedule)
    assert (poll.interval, poll.missed, poll.kwargs) == (5.0, "run_once", {"source": "api"})
    assert isinstance(launch, OnceSchedule)
    assert launch.at == datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_toml_array_and_yaml_forms(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[[schedules]]\nid = "a"\ntask = "t"\ninterval = 2\n')
    yaml = tmp_path / "s.yaml"
    yaml.write_text("schedules:\n  - id: a\n    task: t\n    interval: 2\n")
    assert load_schedules(toml) == load_schedules(yaml)


def _error(data: object) -> str:
    with pytest.raises(ScheduleConfigError) as info:
        parse_schedules(data, source="conf.toml")
    assert isinstance(info.value, TaskiqKitError)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"task": "t"}, "give exactly one trigger"),
        ({"task": "t", "cron": "* * * * *", "interval": 3}, "give exactly one trigger"),
        ({"task": "t", "cron": "61 * * * *"}, "cron: invalid cron expression '61 * * * *'"),
        ({"task": "t", "cron": "0 0 0 31 2 *"}, "invalid cron expression '0 0 0 31 2 *': it never"),
        ({"task": "t", "cron": "* * *"}, "cron: cron '* * *' must have 5 fields"),
        ({"task": "t", "cron": "* * * * *", "tz": "Mars/Olympus"}, "tz: unknown time zone"),
        ({"task": "t", "at": "2030-01-01T00:00:00"}, "at: Input should have timezone info"),
        ({"task": "t", "interval": 0}, "interval: Input should be greater than or equal to 0.1"),
        ({"task": "t", "interval": 1, "every": 2}, "every: Extra inputs are not permitted"),
        ({"task": "t", "interval": 1, "missed": "twice"}, "missed: Input should be 'skip'"),
        ({"task": "t", "interval": 1, "labels": {"delay": -1}}, "labels: invalid 'delay' label"),
        ({"interval": 1}, "task: Field required"),
    ],
)
def test_errors_point_at_entry_and_field(entry: dict[str, object], expected: str) -> None:
    message = _error({"bad-one": entry})
    assert message.startswith("invalid schedules in conf.toml:")
    assert "schedule 'bad-one': " in message
    assert expected in message


def test_every_bad_entry_is_listed_with_its_position() -> None:
    message = _error(
        [
            {"id": "ok", "task": "t", "interval": 1},
            {"id": "late", "task": "t", "at": "tomorrow"},
            {"task": "t", "interval": 1},
            {"id": "ok", "task": "t", "interval": 2},
        ]
    )
    assert "schedule #1 ('late'): at:" in message
    assert "schedule #2: id: Field required" in message
    assert "schedule #3 ('ok'): id 'ok' repeats schedule #0 ('ok')" in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s.toml", "[schedules.a\n", "not valid TOML"),
        ("s.yaml", "schedules: [a, \n", "not valid YAML"),
        ("s.toml", "[other]\n", "no 'schedules' table found"),
        ("s.json", "{}", "unknown file type"),
        ("s.toml", "schedules = 3\n", "'schedules' must be a table keyed by id or a list"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ScheduleConfigError, match=expected) as info:
        load_schedules(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScheduleConfigError, match="cannot read"):
        load_schedules(tmp_path / "nope.toml")


def test_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.toml"
    path.write_text(GOOD_TOML)
    monkeypatch.setenv("TASKIQ_KIT_SCHEDULER_CONFIG", str(path))
    monkeypatch.setenv("TASKIQ_KIT_SCHEDULER_LEASE", "3")
    monkeypatch.setenv(
        "TASKIQ_KIT_SCHEDULER_SCHEDULES", json.dumps({"extra": {"task": "t", "interval": 9}})
    )
    settings = SchedulerSettings()
    assert settings.lease == 3.0
    assert [schedule.id for schedule in settings.load()] == ["report", "poll", "launch", "extra"]
    monkeypatch.setenv(
        "TASKIQ_KIT_SCHEDULER_SCHEDULES", json.dumps([{"id": "poll", "task": "t", "interval": 1}])
    )
    with pytest.raises(ScheduleConfigError, match="used more than once: \\['poll'\\]"):
        SchedulerSettings().load()


def test_taskiq_schedule_labels_are_read() -> None:
    broker = MemoryBroker()

    @broker.task(
        task_name="labelled",
        priority=3,
        schedule=[
            {"cron": "*/5 * * * *", "cron_offset": timedelta(hours=-5, minutes=-30), "args": [1]},
            {"interval": 10, "schedule_id": "every-10", "labels": {"expires": 5}},
            {"time": datetime(2030, 1, 1), "kwargs": {"x": 1}},  # naive: UTC, as in taskiq
            {"cron": "0 * * * *", "cron_offset": "Europe/Berlin"},
        ],
    )
    async def labelled() -> None: ...

    cron, interval, once, berlin = schedules_from_labels(broker)
    assert isinstance(cron, CronSchedule)
    assert (cron.id, cron.tz, cron.args, cron.labels) == (
        "labelled#0",
        "-05:30",
        [1],
        {"priority": 3},
    )
    assert isinstance(interval, IntervalSchedule)
    assert (interval.id, interval.interval, interval.labels) == (
        "every-10",
        10.0,
        {"expires": 5, "priority": 3},
    )
    assert isinstance(once, OnceSchedule)
    assert once.at == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert isinstance(berlin, CronSchedule)
    assert berlin.tz == "Europe/Berlin"


def test_interval_grid_is_the_same_everywhere() -> None:
    schedule = schedule_adapter.validate_python({"id": "a", "task": "t", "interval": 5})
    assert schedule.next_fire(1_000_002.3) == 1_000_005.0
    assert schedule.next_fire(1_000_005.0) == 1_000_010.0
    anchored = IntervalSchedule(
        id="b",
        task="t",
        interval=timedelta(seconds=2),
        anchor=datetime.fromtimestamp(101, timezone.utc),
    )
    assert anchored.next_fire(50.0) == 101.0
    assert anchored.next_fire(101.0) == 103.0


def test_cron_with_seconds_and_time_zone() -> None:
    every_ten = CronSchedule(id="a", task="t", cron="*/10 * * * * *")
    assert every_ten.next_fire(1_000_002.5) == 1_000_010.0
    # 02:30 Berlin does not exist on 2026-03-29 (DST starts): croniter moves on to 03:00 CEST.
    morning = CronSchedule(id="b", task="t", cron="0 30 2 * * *", tz="Europe/Berlin")
    start = datetime(2026, 3, 29, 0, 0, tzinfo=timezone.utc).timestamp()
    fired = datetime.fromtimestamp(morning.next_fire(start) or 0, timezone.utc)
    assert fired.hour == 1  # 03:00 CEST
    five = CronSchedule(id="c", task="t", cron="0 9 * * *", tz="+02:00")
    nine = datetime.fromtimestamp(five.next_fire(start) or 0, timezone(timedelta(hours=2)))
    assert (nine.hour, nine.minute) == (9, 0)


def test_once_fires_only_before_its_instant() -> None:
    once = OnceSchedule(id="a", task="t", at=datetime.fromtimestamp(500, timezone.utc))
    assert once.next_fire(0.0) == 500.0
    assert once.next_fire(500.0) is None


def test_fire_task_id_is_deterministic() -> None:
    first = fire_task_id("group", "poll", 1_000_000.0)
    assert first == fire_task_id("group", "poll", 1_000_000.0)
    assert first != fire_task_id("group", "poll", 1_000_002.0)
    assert first != fire_task_id("other", "poll", 1_000_000.0)
    assert len(first) == 32


def test_last_fire_is_the_latest_instant_not_after_now() -> None:
    every_ten = CronSchedule(id="a", task="t", cron="*/10 * * * * *")
    assert every_ten.last_fire(1_000_000.0) == 1_000_000.0
    assert every_ten.last_fire(1_000_009.9) == 1_000_000.0
    interval = IntervalSchedule(id="b", task="t", interval=5)
    assert interval.last_fire(1_000_004.9) == 1_000_000.0
    assert interval.last_fire(1_000_005.0) == 1_000_005.0
    later = IntervalSchedule(
        id="c", task="t", interval=5, anchor=datetime(2030, 1, 1, tzinfo=timezone.utc)
    )
    assert later.last_fire(1_000_000.0) is None
    once = OnceSchedule(id="d", task="t", at=datetime.fromtimestamp(500, timezone.utc))
    assert (once.last_fire(499.0), once.last_fire(500.0)) == (None, 500.0)
