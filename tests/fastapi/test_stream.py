"""The SSE progress stream, read through the real app on ``memory://``."""

from __future__ import annotations

import pytest

from taskiq_kit import make_broker
from taskiq_kit.fastapi import StreamSettings
from tests.fastapi.app import AUTH, register_tasks
from tests.fastapi.conftest import Api, api_for
from tests.fastapi.helpers import parse_sse, wait_status


async def test_stream_sends_progress_then_final_status_and_ends(
    fast_stream: StreamSettings,
) -> None:
    broker = make_broker("memory://")
    async with api_for(broker, register_tasks(broker), stream=fast_stream) as api:
        handle = await api.tasks.stepper.kiq(4, 0.1)
        response = await api.http.get(f"/tasks/{handle.task_id}/events", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    events, heartbeats = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[-1] == "status"
    assert set(names[:-1]) == {"progress"}
    progress = [data for name, data in events if name == "progress"]
    assert len(progress) >= 2
    fractions = [report["fraction"] for report in progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert progress[-1]["message"] == "step 4"
    assert progress[-1]["meta"] == {"step": 4}
    final = events[-1][1]
    assert final["task_id"] == handle.task_id
    assert final["status"] == "success"
    assert final["is_final"] is True
    assert final["progress"]["fraction"] == 1.0
    assert heartbeats >= 1  # 0.1 s pauses between reports, 0.05 s heartbeat


async def test_stream_of_a_finished_task_replays_last_progress_and_ends(api: Api) -> None:
    handle = await api.tasks.stepper.kiq(2, 0.0)
    await wait_status(api.http, handle.task_id, {"success"})
    response = await api.http.get(f"/tasks/{handle.task_id}/events", headers=AUTH)
    events, _ = parse_sse(response.text)
    assert [name for name, _ in events] == ["progress", "status"]
    assert events[0][1]["fraction"] == 1.0
    assert events[1][1]["status"] == "success"


async def test_stream_ends_with_the_aborted_status(api: Api) -> None:
    handle = await api.tasks.sleepy.kiq(30)
    await wait_status(api.http, handle.task_id, {"started"})
    aborted = await api.http.delete(f"/tasks/{handle.task_id}", headers=AUTH)
    assert aborted.status_code == 200
    response = await api.http.get(f"/tasks/{handle.task_id}/events", headers=AUTH)
    events, _ = parse_sse(response.text)
    assert [name for name, _ in events] == ["status"]
    assert events[0][1]["status"] == "aborted"


async def test_stream_is_bounded_by_max_duration() -> None:
    broker = make_broker("memory://")
    settings = StreamSettings(heartbeat=0.1, max_duration=0.5, poll_interval=0.05)
    async with api_for(broker, register_tasks(broker), stream=settings) as api:
        handle = await api.tasks.add.kicker().with_labels(delay=60).kiq(1, 2)
        response = await api.http.get(f"/tasks/{handle.task_id}/events", headers=AUTH)
    events, heartbeats = parse_sse(response.text)
    assert [name for name, _ in events] == ["status"]
    assert events[0][1]["status"] == "scheduled"
    assert events[0][1]["is_final"] is False
    assert 3 <= heartbeats <= 6


@pytest.mark.parametrize("field", ["heartbeat", "max_duration", "poll_interval"])
def test_stream_settings_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        StreamSettings(**{field: 0})
