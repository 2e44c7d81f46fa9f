"""A test app: tasks registered on a given broker, the kit's lifespan and router, bearer auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from taskiq import TaskiqDepends
from taskiq.decor import AsyncTaskiqDecoratedTask

from taskiq_kit import KitBroker
from taskiq_kit.fastapi import StreamSettings, TaskClientDep, kit_lifespan, tasks_router
from taskiq_kit.results.tracker import Progress

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def verify_token(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization is None:
        raise HTTPException(401, "missing token", headers={"WWW-Authenticate": "Bearer"})
    if authorization != f"Bearer {TOKEN}":
        raise HTTPException(403, "wrong token")


@dataclass
class Tasks:
    add: AsyncTaskiqDecoratedTask[..., Any]
    sleepy: AsyncTaskiqDecoratedTask[..., Any]
    stepper: AsyncTaskiqDecoratedTask[..., Any]
    boom: AsyncTaskiqDecoratedTask[..., Any]
    whoami: AsyncTaskiqDecoratedTask[..., Any]


def register_tasks(broker: KitBroker, prefix: str = "t") -> Tasks:
    @broker.task(task_name=f"{prefix}.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @broker.task(task_name=f"{prefix}.sleepy")
    async def sleepy(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    @broker.task(task_name=f"{prefix}.stepper")
    async def stepper(steps: int, pause: float, progress: Progress = TaskiqDepends()) -> int:
        for step in range(1, steps + 1):
            await asyncio.sleep(pause)
            await progress.report(step / steps, message=f"step {step}", meta={"step": step})
        return steps

    @broker.task(task_name=f"{prefix}.boom")
    async def boom(message: str) -> None:
        raise ValueError(message)

    @broker.task(task_name=f"{prefix}.whoami")
    async def whoami(request: Request = TaskiqDepends()) -> str:
        return f"{request.app.title}:{request.app.state.ready}"

    return Tasks(add=add, sleepy=sleepy, stepper=stepper, boom=boom, whoami=whoami)


def create_app(
    broker: KitBroker,
    tasks: Tasks,
    *,
    expose_tracebacks: bool = False,
    stream: StreamSettings | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # The kit starts the broker first: the app's own lifespan may kick tasks.
        handle = await tasks.add.kiq(20, 22)
        app.state.ready = True
        app.state.startup_task = handle.task_id
        yield {"answer": 42}

    app = FastAPI(title="kit-test", lifespan=kit_lifespan(broker, own_lifespan))
    app.include_router(
        tasks_router(
            broker,
            dependencies=[Depends(verify_token)],
            expose_tracebacks=expose_tracebacks,
            abort_wait=2.0,
            stream=stream,
        )
    )

    @app.post("/kick/{name}", dependencies=[Depends(verify_token)])
    async def kick(
        name: str,
        client: TaskClientDep,
        delay: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, str]:
        handle = await client.kick(name, delay=delay, **(body or {}))
        return {"task_id": handle.task_id}

    @app.get("/answer")
    async def answer(request: Request) -> dict[str, Any]:
        return {"answer": request.state.answer, "startup_task": request.app.state.startup_task}

    return app
