"""What the task page makes of a record: timeline, arguments, whether it can run again."""

from __future__ import annotations

import json

from taskiq_kit.dashboard.chart import Chart
from taskiq_kit.dashboard.render import duration, when
from taskiq_kit.dashboard.views import Step, arguments, can_rerun, rerun_arguments, timeline
from taskiq_kit.results.record import TaskRecord, TaskStatus


def record(**fields: object) -> TaskRecord:
    return TaskRecord.model_validate({"task_id": "t1", "status": "success", **fields})


def test_timeline_from_the_record_times() -> None:
    found = timeline(
        record(
            status="aborted",
            kicked_at=100.0,
            due_at=110.0,
            started_at=111.0,
            worker="host:1",
            abort_requested_at=112.0,
            finished_at=112.5,
        )
    )
    assert found == [
        Step("pending", 100.0, "kicked"),
        Step("scheduled", 110.0, "due"),
        Step("started", 111.0, "attempt 1 on host:1"),
        Step("abort requested", 112.0),
        Step("aborted", 112.5),
    ]


def test_timeline_kept_by_the_store_wins_and_keeps_the_abort() -> None:
    kept = [(TaskStatus.PENDING, 1.0), (TaskStatus.STARTED, 2.0), (TaskStatus.ABORTED, 4.0)]
    found = timeline(record(status="aborted", kicked_at=1.0, abort_requested_at=3.0, timeline=kept))
    assert [(step.status, step.at) for step in found] == [
        ("pending", 1.0),
        ("started", 2.0),
        ("abort requested", 3.0),
        ("aborted", 4.0),
    ]


def test_arguments_kept_as_json_text_show_and_run_again() -> None:
    whole = record(task_name="t", args=json.dumps([1, "a"]), kwargs=json.dumps({"k": 2}))
    assert arguments(whole) == ('[\n  1,\n  "a"\n]', '{\n  "k": 2\n}')
    assert rerun_arguments(whole) == ([1, "a"], {"k": 2})
    cut = record(task_name="t", args='["aaaa...', kwargs="{}", args_truncated=True)
    assert arguments(cut) == ('["aaaa...', "{}")
    assert rerun_arguments(cut) is None
    assert not can_rerun(record(args="[]", kwargs="{}"))  # no task name
    assert not can_rerun(record(task_name="t"))  # nothing kept


def test_formats() -> None:
    assert when(None) == "-"
    assert when(0) == "1970-01-01 00:00:00"
    assert [duration(x) for x in (0.25, 12.34, 250, 7500)] == [
        "250 ms",
        "12.3 s",
        "4 min 10 s",
        "2 h 5 min",
    ]
    assert Chart().bars == []
