"""The example API: kick tasks, follow them, abort them.

How to run (one process, tasks run in the API process on ``memory://``)::

    uvicorn examples.fastapi_app.api:app
    curl -X POST localhost:8000/crunch -H 'Authorization: Bearer dev-token'
    curl -X POST localhost:8000/fail -H 'Authorization: Bearer dev-token'
    curl localhost:8000/tasks/<task_id> -H 'Authorization: Bearer dev-token'
    curl -N localhost:8000/tasks/<task_id>/events -H 'Authorization: Bearer dev-token'
    open http://localhost:8000/dashboard/    # user admin, password dev-token

Set ``EXAMPLE_API_TOKEN`` to change the token (default ``dev-token``), and see ``tasks.py`` to
run the worker as its own process on Redis or RabbitMQ.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from pydantic import BaseModel, Field

from examples.fastapi_app.scheduler import scheduler
from examples.fastapi_app.tasks import broker, crunch, fail
from taskiq_kit.dashboard import dashboard_router
from taskiq_kit.fastapi import TaskClientDep, kit_lifespan, tasks_router

_bearer = HTTPBearer(auto_error=False)
_basic = HTTPBasic(auto_error=False)


def verify_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Accept ``Authorization: Bearer <EXAMPLE_API_TOKEN>``; refuse anything else with 401."""
    expected = os.environ.get("EXAMPLE_API_TOKEN", "dev-token")
    if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


def verify_admin(
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> None:
    """Accept HTTP Basic ``admin`` / ``<EXAMPLE_API_TOKEN>`` (browsers ask for it); else 401."""
    expected = os.environ.get("EXAMPLE_API_TOKEN", "dev-token")
    user_ok = credentials is not None and secrets.compare_digest(credentials.username, "admin")
    password_ok = credentials is not None and secrets.compare_digest(credentials.password, expected)
    if not (user_ok and password_ok):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the dashboard needs the admin user's password",
            headers={"WWW-Authenticate": 'Basic realm="taskiq-kit dashboard"'},
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's own start-up and shutdown (a database pool would go here)."""
    app.state.started = True
    yield


app = FastAPI(title="taskiq-kit example", lifespan=kit_lifespan(broker, lifespan))
app.include_router(tasks_router(broker, dependencies=[Depends(verify_token)]))
app.include_router(
    dashboard_router(
        broker, scheduler=scheduler, dependencies=[Depends(verify_admin)], prefix="/dashboard"
    )
)


class CrunchIn(BaseModel):
    steps: int = Field(default=5, ge=1, le=100)
    step_seconds: float = Field(default=0.2, ge=0, le=10)
    delay: float | None = Field(default=None, ge=0, le=3600, description="Seconds to wait.")


class Kicked(BaseModel):
    task_id: str


@app.post(
    "/crunch",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(verify_token)],
)
async def start_crunch(tasks: TaskClientDep, body: CrunchIn | None = None) -> Kicked:
    """Start the crunch task; follow it at ``/tasks/{task_id}``."""
    body = body or CrunchIn()
    handle = await tasks.kick(
        crunch, steps=body.steps, step_seconds=body.step_seconds, delay=body.delay
    )
    return Kicked(task_id=handle.task_id)


class FailIn(BaseModel):
    message: str = Field(default="it went wrong on purpose", max_length=200)


@app.post(
    "/fail",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(verify_token)],
)
async def start_fail(tasks: TaskClientDep, body: FailIn | None = None) -> Kicked:
    """Start a task that fails on purpose; its error shows at ``/tasks/{task_id}``."""
    body = body or FailIn()
    handle = await tasks.kick(fail, body.message)
    return Kicked(task_id=handle.task_id)


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}
