"""A trace from a FastAPI request, through the kick, to the worker's run of the task."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskiq_kit import KitBroker, TaskStatus, UnroutableTaskError, abort_task
from taskiq_kit.observability.tracing import STATUS_EVENT, TracingMiddleware
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.redis import RedisBroker
from tests.brokers import in_process_worker
from tests.ops.app import AMQP_URL, build
from tests.ops.helpers import forget, wait_final, wait_status
from tests.redis.harness import delete_keys

pytestmark = pytest.mark.redis

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT = f"00-{TRACE_ID:032x}-00f067aa0ba902b7-01"


@asynccontextmanager
async def _traced(name: str, tracer: trace.Tracer) -> AsyncIterator[tuple[KitBroker, KitBroker]]:
    """A client broker (the API's) and a worker broker on one queue, both traced."""
    client, worker = build(name), build(name)
    for broker in (client, worker):
        broker.add_middlewares(TracingMiddleware(tracer=tracer))

    @worker.task(task_name="nested")
    async def nested() -> str:
        with tracer.start_as_current_span("inside the task"):
            return "done"

    await client.startup()
    await worker.startup()
    try:
        async with in_process_worker(worker):
            yield client, worker
    finally:
        await client.shutdown()
        await worker.shutdown()
        assert isinstance(worker, RedisBroker)
        await delete_keys(worker.keys)
        await forget(name)


def _app(client: KitBroker, tracer: trace.Tracer) -> FastAPI:
    app = FastAPI()

    @app.post("/kick/{task_name}")
    async def kick(task_name: str, request: Request) -> dict[str, Any]:
        # What an instrumented server does: continue the caller's trace in a SERVER span.
        parent = propagate.extract(dict(request.headers))
        with tracer.start_as_current_span(
            f"POST /kick/{task_name}", context=parent, kind=SpanKind.SERVER
        ):
            task = client.find_task(task_name) or client.register_task(_remote, task_name=task_name)
            kicked = await task.kicker().with_labels(**dict(request.query_params)).kiq()
        return {"task_id": kicked.task_id}

    return app


async def _remote() -> None:
    raise AssertionError("runs in the worker only")


def _exporter() -> tuple[InMemorySpanExporter, trace.Tracer]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("tests")


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def _statuses(span: ReadableSpan) -> list[str]:
    return [
        str((event.attributes or {}).get("status"))
        for event in span.events
        if event.name == STATUS_EVENT
    ]


async def _kick(app: FastAPI, path: str) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.post(path, headers={"traceparent": PARENT})
    assert response.status_code == 200, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def test_a_request_trace_continues_in_the_worker_run_and_the_task_inside_it(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    exporter, tracer = _exporter()
    async with _traced(unique_name("trace"), tracer) as (client, _worker):
        app = _app(client, tracer)
        task_id = await _kick(app, "/kick/nested")
        assert await wait_final(client, task_id) is TaskStatus.SUCCESS
        spans = list(exporter.get_finished_spans())

    request = _one(spans, "POST /kick/nested")
    send = _one(spans, "send nested")
    run = _one(spans, "run nested")
    inside = _one(spans, "inside the task")
    assert {span.context.trace_id for span in (request, send, run, inside)} == {TRACE_ID}
    assert request.parent is not None
    assert request.parent.span_id == 0x00F067AA0BA902B7
    assert send.parent is not None
    assert send.parent.span_id == request.context.span_id
    assert run.parent is not None
    assert run.parent.span_id == send.context.span_id
    assert inside.parent is not None
    assert inside.parent.span_id == run.context.span_id
    assert send.kind is SpanKind.PRODUCER
    assert run.kind is SpanKind.CONSUMER
    assert _statuses(send) == ["pending"]
    assert _statuses(run) == ["started", "success"]
    assert run.attributes is not None
    assert run.attributes["messaging.message.id"] == task_id
    assert run.status.status_code is not StatusCode.ERROR


async def test_failure_delay_and_abort_are_status_events_of_their_spans(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    exporter, tracer = _exporter()
    async with _traced(unique_name("trace"), tracer) as (client, _worker):
        app = _app(client, tracer)
        failed = await _kick(app, "/kick/boom")
        delayed = await _kick(app, "/kick/ok?delay=0.5")
        sleepy = await _kick(app, "/kick/sleepy")
        assert await wait_final(client, failed) is TaskStatus.FAILURE
        assert await wait_final(client, delayed) is TaskStatus.SUCCESS
        await wait_status(client, sleepy, {TaskStatus.STARTED})
        await abort_task(client, sleepy)
        assert await wait_final(client, sleepy) is TaskStatus.ABORTED
        spans = list(exporter.get_finished_spans())

    boom = _one(spans, "run boom")
    assert _statuses(boom) == ["started", "failure"]
    assert boom.status.status_code is StatusCode.ERROR
    assert [event.name for event in boom.events if event.name == "exception"] == ["exception"]
    assert _statuses(_one(spans, "send ok")) == ["scheduled"]
    assert _statuses(_one(spans, "run ok")) == ["started", "success"]
    assert _statuses(_one(spans, "run sleepy")) == ["started", "aborted"]
    assert _one(spans, "run sleepy").status.status_code is not StatusCode.ERROR
    for name in ("boom", "ok", "sleepy"):
        send, run = _one(spans, f"send {name}"), _one(spans, f"run {name}")
        assert run.parent is not None
        assert run.parent.span_id == send.context.span_id
        assert run.context.trace_id == TRACE_ID


@pytest.mark.rabbit
async def test_a_failed_kick_leaves_the_callers_trace_context_as_it_was(
    unique_name: Callable[[str], str], amqp_url: str, redis_url: str
) -> None:
    exporter, tracer = _exporter()
    name = unique_name("trace")
    broker = build(name, rabbit=True)
    assert isinstance(broker, RabbitBroker)
    broker.add_middlewares(TracingMiddleware(tracer=tracer))
    await broker.startup()
    try:
        ok = broker.find_task("ok")
        assert ok is not None
        with tracer.start_as_current_span("request") as request:
            with pytest.raises(UnroutableTaskError):
                await ok.kicker().with_labels(queue=f"{name}-nowhere").kiq()
            # taskiq's own middleware would leave its send span current here.
            assert trace.get_current_span() is request
            await ok.kiq(1)
    finally:
        await broker.shutdown()
        async with await aio_pika.connect(AMQP_URL) as connection:
            await broker.topology.delete(await connection.channel())
        await forget(name)
    spans = list(exporter.get_finished_spans())
    assert [span.name for span in spans] == ["send ok", "request"]
    assert spans[0].parent is not None
    assert spans[0].parent.span_id == spans[1].context.span_id
