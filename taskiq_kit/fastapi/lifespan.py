"""Start and stop the broker with the FastAPI app, and give tasks FastAPI's dependencies.

API side::

    app = FastAPI(lifespan=kit_lifespan(broker))                 # no lifespan of your own
    app = FastAPI(lifespan=kit_lifespan(broker, my_lifespan))    # yours runs inside the kit's

Worker side (``taskiq worker tasks:broker``), so tasks can declare
``request: Request = TaskiqDepends()`` and reach what your lifespan set up (taskiq-fastapi)::

    init_worker(broker, "myapp.api:app")

In the worker the app's lifespan runs once at start-up, and the kit's part of it leaves the
broker alone (the worker starts and stops it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, overload

import taskiq_fastapi
from fastapi import FastAPI
from starlette.types import StatefulLifespan, StatelessLifespan
from taskiq.abc.broker import AsyncBroker

from taskiq_kit.fastapi.deps import STATE_BROKER

#: What ``FastAPI(lifespan=...)`` accepts.
AppLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


@overload
def kit_lifespan(
    broker: AsyncBroker,
    lifespan: StatefulLifespan[FastAPI],
    *,
    populate_dependencies: bool = True,
) -> StatefulLifespan[FastAPI]: ...


@overload
def kit_lifespan(
    broker: AsyncBroker,
    lifespan: StatelessLifespan[FastAPI] | None = None,
    *,
    populate_dependencies: bool = True,
) -> StatelessLifespan[FastAPI]: ...


def kit_lifespan(
    broker: AsyncBroker,
    lifespan: AppLifespan | None = None,
    *,
    populate_dependencies: bool = True,
) -> AppLifespan:
    """A FastAPI lifespan that starts ``broker`` (and its result backend) and stops it after.

    The broker starts before ``lifespan`` enters, so your lifespan may kick tasks, and stops
    after it exits. What your lifespan yields stays the app's lifespan state. Inside a
    ``taskiq worker`` process (taskiq-fastapi runs the app's lifespan there) the broker is left
    to the worker.

    Args:
        broker: the app's broker (from :func:`taskiq_kit.make_broker`).
        lifespan: the app's own lifespan, if it has one; it runs inside the kit's.
        populate_dependencies: let tasks run by this process (``memory://``) resolve FastAPI's
            ``Request`` / ``HTTPConnection`` dependencies, like taskiq-fastapi does in workers.

    Returns:
        The lifespan to pass as ``FastAPI(lifespan=...)``.

    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Mapping[str, Any] | None]:
        setattr(app.state, STATE_BROKER, broker)
        in_worker = broker.is_worker_process
        async with AsyncExitStack() as stack:
            if not in_worker:
                await broker.startup()
                stack.push_async_callback(broker.shutdown)
            state: Mapping[str, Any] | None = None
            if lifespan is not None:
                state = await stack.enter_async_context(lifespan(app))
            if populate_dependencies and not in_worker:
                taskiq_fastapi.populate_dependency_context(broker, app, state)
            yield state

    return run


def init_worker(broker: AsyncBroker, app: str | FastAPI | Callable[[], FastAPI]) -> None:
    """Let tasks run by ``taskiq worker`` use FastAPI dependencies of ``app``.

    Thin wrapper over ``taskiq_fastapi.init``: in worker processes the app's lifespan runs at
    start-up and ``Request`` / ``HTTPConnection`` resolve to requests of that app (its
    ``request.app.state`` and lifespan state included). Call it where the broker is defined;
    pass the app as ``"module:attribute"`` text to avoid importing the API in the tasks module.

    Args:
        broker: the broker the worker runs.
        app: the FastAPI app, its import path, or a factory.

    """
    taskiq_fastapi.init(broker, app)
