"""Tasks of the example app, and its broker.

The broker comes from the environment (``TASKIQ_KIT_BROKER_URL``, default ``memory://``):

* one process: ``uvicorn examples.fastapi_app.api:app`` runs the API and the tasks;
* separate processes, e.g. on Redis::

      export TASKIQ_KIT_BROKER_URL=redis://127.0.0.1:6379/0
      taskiq worker examples.fastapi_app.tasks:broker
      uvicorn examples.fastapi_app.api:app

  (RabbitMQ: ``amqp://guest:guest@127.0.0.1:5672/`` for the broker, plus
  ``TASKIQ_KIT_RESULT_URL=redis://...`` so API and worker share results.)
"""

from __future__ import annotations

import asyncio
import os

from fastapi import Request
from taskiq import TaskiqDepends

from taskiq_kit import KitSettings, make_broker
from taskiq_kit.fastapi import init_worker
from taskiq_kit.results.tracker import Progress


def _queue_option(url: str) -> dict[str, str]:
    """Optional queue of its own (``EXAMPLE_QUEUE``), to share a server with other apps."""
    name = os.environ.get("EXAMPLE_QUEUE")
    if not name or url.startswith("memory"):
        return {}
    return {"queue_name": name}


settings = KitSettings()
url = settings.broker_url.get_secret_value()
broker = make_broker(
    url,
    result_url=None if settings.result_url is None else settings.result_url.get_secret_value(),
    result_ttl=settings.result_ttl,
    **_queue_option(url),
)
# In `taskiq worker` processes, run the API's lifespan and let tasks use its dependencies.
init_worker(broker, "examples.fastapi_app.api:app")


@broker.task(task_name="example.add")
async def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@broker.task(task_name="example.crunch")
async def crunch(
    steps: int = 5,
    step_seconds: float = 0.2,
    progress: Progress = TaskiqDepends(),
    request: Request = TaskiqDepends(),
) -> dict[str, object]:
    """Work in ``steps`` steps, reporting progress after each (abortable between steps)."""
    for step in range(1, steps + 1):
        await asyncio.sleep(step_seconds)
        await progress.report(step / steps, message=f"step {step} of {steps}", meta={"step": step})
    # A FastAPI dependency, resolved in the worker by taskiq-fastapi: the API app's state.
    return {"steps": steps, "app": request.app.title}


@broker.task(task_name="example.fail")
async def fail(message: str) -> None:
    """Fail on purpose, to show how errors look over HTTP."""
    raise ValueError(message)
