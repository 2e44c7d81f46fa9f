"""Fixtures: the test app on a started broker, driven like a server does, with an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.fastapi import StreamSettings
from tests.fastapi.app import Tasks, create_app, register_tasks


@asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """Run ``app``'s lifespan over the ASGI protocol, as uvicorn does, and share its state.

    Yields an ASGI app that gives every request a copy of the lifespan state.
    """
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        await outbox.put(message)

    async def run() -> None:
        await app({"type": "lifespan", "state": state}, receive, send)

    runner = asyncio.create_task(run())
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 10)
    assert started["type"] == "lifespan.startup.complete", started

    async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    try:
        yield with_state
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await asyncio.wait_for(outbox.get(), 15)
        await asyncio.wait_for(runner, 5)
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


@dataclass
class Api:
    broker: KitBroker
    tasks: Tasks
    http: httpx.AsyncClient


@asynccontextmanager
async def api_for(broker: KitBroker, tasks: Tasks, **app_options: Any) -> AsyncIterator[Api]:
    app = create_app(broker, tasks, **app_options)
    async with serve(app) as served:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Api(broker=broker, tasks=tasks, http=http)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """The test app on a fresh ``memory://`` broker (tasks run in this process)."""
    broker = make_broker("memory://")
    async with api_for(broker, register_tasks(broker)) as running:
        yield running


@pytest.fixture
def fast_stream() -> StreamSettings:
    return StreamSettings(heartbeat=0.05, max_duration=10.0, poll_interval=0.05)
