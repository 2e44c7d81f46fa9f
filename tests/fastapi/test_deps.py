"""Lifespan, ``Depends`` providers and ``TaskClient``, through the real app on ``memory://``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi import Depends, FastAPI

from taskiq_kit import InvalidDelayError, KitBroker, TaskStatus, make_broker
from taskiq_kit.exceptions import TaskFailedError
from taskiq_kit.fastapi import (
    BrokerDep,
    BrokerNotConfiguredError,
    TaskClient,
    TaskClientDep,
    broker_provider,
    kit_lifespan,
    task_client_provider,
)
from tests.fastapi.app import AUTH, register_tasks
from tests.fastapi.conftest import Api, serve
from tests.fastapi.helpers import wait_status


async def test_lifespan_starts_broker_before_the_apps_own_and_keeps_its_state(api: Api) -> None:
    response = await api.http.get("/answer")
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == 42  # what the app's own lifespan yielded
    # ...which ran after the broker started, so it could kick a task:
    assert await wait_status(api.http, body["startup_task"], {"success"})


async def test_lifespan_stops_the_broker() -> None:
    broker = make_broker("memory://")
    tasks = register_tasks(broker)
    app = FastAPI(lifespan=kit_lifespan(broker))
    async with serve(app):
        handle = await tasks.add.kiq(1, 1)
        assert (await handle.wait_result(timeout=5)).return_value == 2
    # The in-process consumer is gone: a new kick stays pending.
    late = await tasks.add.kiq(1, 1)
    assert not await late.is_ready()


async def test_task_resolves_fastapi_request_dependency_in_process(api: Api) -> None:
    kicked = await api.http.post("/kick/t.whoami", headers=AUTH)
    task_id = kicked.json()["task_id"]
    await wait_status(api.http, task_id, {"success"})
    result = (await api.http.get(f"/tasks/{task_id}/result", headers=AUTH)).json()
    assert result["value"] == "kit-test:True"


async def test_kick_by_name_with_delay_through_task_client_dep(api: Api) -> None:
    kicked = await api.http.post(
        "/kick/t.add", params={"delay": 0.2}, json={"a": 2, "b": 3}, headers=AUTH
    )
    task_id = kicked.json()["task_id"]
    info = (await api.http.get(f"/tasks/{task_id}", headers=AUTH)).json()
    assert info["status"] == "scheduled"
    await wait_status(api.http, task_id, {"success"})
    result = (await api.http.get(f"/tasks/{task_id}/result", headers=AUTH)).json()
    assert result["value"] == 5


async def test_broker_dep_and_explicit_providers() -> None:
    broker = make_broker("memory://")
    other = make_broker("memory://")
    app = FastAPI(lifespan=kit_lifespan(broker))

    @app.get("/same")
    async def same(
        mine: BrokerDep,
        explicit: KitBroker = Depends(broker_provider(other)),
        client: TaskClient = Depends(task_client_provider(other)),
    ) -> dict[str, bool]:
        return {
            "lifespan": mine is broker,
            "explicit": explicit is other,
            "client": client.broker is other,
        }

    async with (
        serve(app) as served,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served), base_url="http://test"
        ) as http,
    ):
        assert (await http.get("/same")).json() == {
            "lifespan": True,
            "explicit": True,
            "client": True,
        }


async def test_dependency_without_the_kit_lifespan_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/kick")
    async def kick(client: TaskClientDep) -> None:
        raise AssertionError("not reached")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        with pytest.raises(BrokerNotConfiguredError, match="kit_lifespan"):
            await http.get("/kick")


async def test_task_client_end_to_end() -> None:
    broker = make_broker("memory://")
    tasks = register_tasks(broker)
    client = TaskClient(broker, abort_wait=2)

    @asynccontextmanager
    async def started() -> AsyncIterator[None]:
        await broker.startup()
        try:
            yield
        finally:
            await broker.shutdown()

    async with started():
        soon = datetime.now(timezone.utc) + timedelta(seconds=0.2)
        handle = await client.kick(tasks.stepper, 2, 0.0, eta=soon, expires=30, task_id="my-task-1")
        assert handle.task_id == "my-task-1"
        assert await client.status("my-task-1") is TaskStatus.SCHEDULED
        assert await client.result("my-task-1") is None
        reports = [report async for report in client.watch("my-task-1", poll_interval=0.05)]
        assert reports[-1].fraction == 1.0
        record = await client.record("my-task-1")
        assert record.status is TaskStatus.SUCCESS
        assert record.expires_at is not None
        result = await client.result("my-task-1")
        assert result is not None
        assert result.return_value == 2
        assert (await client.progress("my-task-1")) == reports[-1]

        failed = await client.kick("t.boom", "bad")
        await failed.wait_result(timeout=5)
        failure = await client.result(failed.task_id)
        assert failure is not None
        assert isinstance(failure.error, TaskFailedError)
        assert failure.error.error_type == "ValueError"

        with pytest.raises(InvalidDelayError):
            await client.kick(tasks.add, 1, 2, delay=-1)
        with pytest.raises(ValueError, match="task id"):
            await client.kick(tasks.add, 1, 2, task_id="bad id")

        unknown = await client.kick("not.registered.here", delay=60)
        assert await client.status(unknown.task_id) is TaskStatus.SCHEDULED
        assert (await client.abort(unknown.task_id)).value == "aborted_before_start"
