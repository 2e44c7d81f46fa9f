"""The tasks router over HTTP, against the real app on ``memory://`` (tasks run in-process)."""

from __future__ import annotations

import pytest
from fastapi import Depends

from taskiq_kit import make_broker
from taskiq_kit.fastapi import AnonymousRouterError, tasks_router
from tests.fastapi.app import AUTH, register_tasks, verify_token
from tests.fastapi.conftest import Api, api_for
from tests.fastapi.helpers import wait_status


def test_router_without_auth_dependency_refuses_to_build() -> None:
    broker = make_broker("memory://")
    with pytest.raises(AnonymousRouterError, match="allow_anonymous=True") as caught:
        tasks_router(broker)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(AnonymousRouterError):
        tasks_router(broker, dependencies=[])
    assert tasks_router(broker, allow_anonymous=True).routes
    assert tasks_router(broker, dependencies=[Depends(verify_token)]).routes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks/abc"),
        ("GET", "/tasks/abc/result"),
        ("DELETE", "/tasks/abc"),
        ("GET", "/tasks/abc/events"),
    ],
)
async def test_routes_refuse_requests_without_auth(api: Api, method: str, path: str) -> None:
    missing = await api.http.request(method, path)
    assert missing.status_code == 401
    wrong = await api.http.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    allowed = await api.http.request(method, path, headers=AUTH)
    assert allowed.status_code == 404


async def test_kick_status_transitions_then_result(api: Api) -> None:
    kicked = await api.http.post(
        "/kick/t.sleepy", params={"delay": 0.3}, json={"seconds": 0.3}, headers=AUTH
    )
    assert kicked.status_code == 200, kicked.text
    task_id = kicked.json()["task_id"]

    early = await api.http.get(f"/tasks/{task_id}/result", headers=AUTH)
    assert early.status_code == 409
    assert early.json()["code"] == "task_not_finished"
    assert early.json()["status"] == "scheduled"

    seen = await wait_status(api.http, task_id, {"success"})
    assert seen == ["scheduled", "pending", "started", "success"] or seen == [
        "scheduled",
        "started",
        "success",
    ]

    info = (await api.http.get(f"/tasks/{task_id}", headers=AUTH)).json()
    assert info["task_name"] == "t.sleepy"
    assert info["is_final"] is True
    assert info["attempt"] == 1
    assert info["worker"]
    for stamp in ("kicked_at", "due_at", "started_at", "finished_at"):
        assert info[stamp].endswith(("Z", "+00:00")), info
    assert info["kicked_at"] < info["due_at"] <= info["started_at"] < info["finished_at"]

    result = await api.http.get(f"/tasks/{task_id}/result", headers=AUTH)
    assert result.status_code == 200
    body = result.json()
    assert body["status"] == "success"
    assert body["value"] == "slept"
    assert body["error"] is None
    assert body["execution_time"] >= 0.3


async def test_failed_task_shows_error_without_traceback(api: Api) -> None:
    handle = await api.tasks.boom.kiq("kaput")
    await wait_status(api.http, handle.task_id, {"failure"})
    result = (await api.http.get(f"/tasks/{handle.task_id}/result", headers=AUTH)).json()
    assert result["status"] == "failure"
    assert result["value"] is None
    assert result["error"] == {"type": "ValueError", "message": "kaput", "traceback": None}
    info = (await api.http.get(f"/tasks/{handle.task_id}", headers=AUTH)).json()
    assert info["error"] == {"type": "ValueError", "message": "kaput", "traceback": None}


async def test_tracebacks_only_when_exposed() -> None:
    broker = make_broker("memory://")
    async with api_for(broker, register_tasks(broker), expose_tracebacks=True) as api:
        handle = await api.tasks.boom.kiq("kaput")
        await wait_status(api.http, handle.task_id, {"failure"})
        result = (await api.http.get(f"/tasks/{handle.task_id}/result", headers=AUTH)).json()
        assert "ValueError: kaput" in result["error"]["traceback"]


async def test_delete_aborts_a_running_task(api: Api) -> None:
    handle = await api.tasks.sleepy.kiq(30)
    await wait_status(api.http, handle.task_id, {"started"})

    aborted = await api.http.delete(f"/tasks/{handle.task_id}", headers=AUTH)
    assert aborted.status_code == 200, aborted.text
    assert aborted.json() == {
        "task_id": handle.task_id,
        "outcome": "aborted_while_running",
        "status": "aborted",
    }
    again = await api.http.delete(f"/tasks/{handle.task_id}", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["outcome"] == "already_aborted"

    result = (await api.http.get(f"/tasks/{handle.task_id}/result", headers=AUTH)).json()
    assert result["status"] == "aborted"
    assert result["value"] is None
    assert result["error"]["type"].endswith("TaskAbortedError")


async def test_delete_of_a_delayed_task_stops_it_before_it_starts(api: Api) -> None:
    handle = await api.tasks.add.kicker().with_labels(delay=30).kiq(1, 2)
    aborted = await api.http.delete(f"/tasks/{handle.task_id}", headers=AUTH)
    assert aborted.status_code == 200
    assert aborted.json()["outcome"] == "aborted_before_start"
    result = (await api.http.get(f"/tasks/{handle.task_id}/result", headers=AUTH)).json()
    # An aborted task has a stored result: its TaskAbortedError, so waiting callers return.
    assert (result["status"], result["value"]) == ("aborted", None)
    assert result["error"]["type"].endswith("TaskAbortedError")
    assert await handle.is_ready()


async def test_delete_of_a_finished_task_conflicts(api: Api) -> None:
    handle = await api.tasks.add.kiq(1, 2)
    await wait_status(api.http, handle.task_id, {"success"})
    response = await api.http.delete(f"/tasks/{handle.task_id}", headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {
        "task_id": handle.task_id,
        "outcome": "already_finished",
        "status": "success",
    }


async def test_delete_that_does_not_wait_is_accepted(api: Api) -> None:
    handle = await api.tasks.sleepy.kiq(30)
    await wait_status(api.http, handle.task_id, {"started"})
    response = await api.http.delete(f"/tasks/{handle.task_id}", params={"wait": 0}, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["outcome"] == "abort_requested"
    await wait_status(api.http, handle.task_id, {"aborted"})


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", "")]
)
async def test_unknown_id_is_404(api: Api, method: str, suffix: str) -> None:
    response = await api.http.request(method, f"/tasks/no-such-task{suffix}", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "code": "task_not_found",
        "detail": "no task with id 'no-such-task' is known (never kicked, or its record expired)",
        "task_id": "no-such-task",
        "status": None,
    }


@pytest.mark.parametrize("task_id", ["bad%20id", "a" * 201, "hash%7Btag%7D", "%C3%A9t%C3%A9"])
async def test_malformed_id_is_422(api: Api, task_id: str) -> None:
    for method, suffix in (("GET", ""), ("GET", "/result"), ("DELETE", ""), ("GET", "/events")):
        response = await api.http.request(method, f"/tasks/{task_id}{suffix}", headers=AUTH)
        assert response.status_code == 422, (method, suffix, response.text)


async def test_bad_abort_wait_is_422(api: Api) -> None:
    for wait in ("-1", "61", "soon"):
        response = await api.http.delete("/tasks/abc", params={"wait": wait}, headers=AUTH)
        assert response.status_code == 422
