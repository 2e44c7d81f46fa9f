"""The example app as users run it: uvicorn alone on ``memory://``; uvicorn + ``taskiq worker`` on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from redis import Redis

from taskiq_kit.redis.keys import RedisKeys
from tests.fastapi.processes import api_process, worker_process

AUTH = {"Authorization": "Bearer example-secret"}


@contextlib.contextmanager
def running_example(
    kind: str, request: pytest.FixtureRequest, names: Callable[[str], str]
) -> Iterator[str]:
    env = {"EXAMPLE_API_TOKEN": "example-secret"}
    if kind == "memory":
        env["TASKIQ_KIT_BROKER_URL"] = "memory://"
        with api_process(env) as base:
            yield base
        return
    redis_url: str = request.getfixturevalue("redis_url")
    queue = names("fastapi")
    env |= {"TASKIQ_KIT_BROKER_URL": redis_url, "EXAMPLE_QUEUE": queue}
    try:
        with worker_process(env), api_process(env) as base:
            yield base
    finally:
        client = Redis.from_url(redis_url)
        try:
            client.delete(*RedisKeys(queue=queue).all())
        finally:
            client.close()


async def read_events(
    http: httpx.AsyncClient, task_id: str, on_first_progress: Callable[[], Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Read the SSE stream line by line, as a browser would; call back at the first progress event."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = "message"
    async with http.stream("GET", f"/tasks/{task_id}/events", headers=AUTH) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if name == "progress" and len(events) == 1:
                    await on_first_progress()
    return events


async def wait_for(http: httpx.AsyncClient, task_id: str, status: str, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (
        current := (await http.get(f"/tasks/{task_id}", headers=AUTH)).json()["status"]
    ) != status:
        assert loop.time() < deadline, f"task {task_id} stayed {current}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_example_app_over_http(
    kind: str, request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> None:
    with running_example(kind, request, unique_name) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await http.post("/crunch")).status_code == 401
            assert (
                await http.get("/tasks/anything", headers={"Authorization": "Bearer x"})
            ).status_code == 401

            kicked = await http.post(
                "/crunch", json={"steps": 4, "step_seconds": 0.3}, headers=AUTH
            )
            assert kicked.status_code == 202, kicked.text
            task_id = kicked.json()["task_id"]
            seen_while_running: list[str] = []

            async def check_running() -> None:
                info = (await http.get(f"/tasks/{task_id}", headers=AUTH)).json()
                seen_while_running.append(info["status"])

            events = await read_events(http, task_id, check_running)
            assert seen_while_running == ["started"]  # the stream is live, not replayed at the end
            names = [name for name, _ in events]
            assert names.count("progress") >= 2
            assert names[-1] == "status"
            assert events[-1][1]["status"] == "success"

            result = (await http.get(f"/tasks/{task_id}/result", headers=AUTH)).json()
            # "app" comes from a FastAPI Request dependency resolved where the task ran.
            assert result["value"] == {"steps": 4, "app": "taskiq-kit example"}

            long = (
                await http.post("/crunch", json={"steps": 100, "step_seconds": 0.2}, headers=AUTH)
            ).json()
            await wait_for(http, long["task_id"], "started")
            aborted = await http.delete(f"/tasks/{long['task_id']}", headers=AUTH)
            assert aborted.status_code == 200, aborted.text
            assert aborted.json()["outcome"] == "aborted_while_running"
            assert (await http.delete(f"/tasks/{long['task_id']}", headers=AUTH)).status_code == 409
            assert (await http.get("/tasks/never-kicked/result", headers=AUTH)).status_code == 404

            failing = await http.post("/fail", json={"message": "no such order"}, headers=AUTH)
            assert failing.status_code == 202, failing.text
            failed_id = failing.json()["task_id"]
            await wait_for(http, failed_id, "failure")
            info = (await http.get(f"/tasks/{failed_id}", headers=AUTH)).json()
            assert info["error"]["type"] == "ValueError"
            assert info["error"]["message"] == "no such order"
