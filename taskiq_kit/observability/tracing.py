"""OpenTelemetry traces of a kit broker: a span around each kick and around each run.

Install the extra (``pip install taskiq-kit[tracing]``, the OpenTelemetry API only: the app
configures the SDK and its exporter) and add the middleware to the broker on both sides::

    broker = make_broker("amqp://...").with_middlewares(TracingMiddleware())

The kick's span (``send <task>``, a PRODUCER span, child of whatever span is current, e.g. a
FastAPI request's) puts its context in the message's labels (W3C ``traceparent`` /
``tracestate`` through the global propagator); the worker's run span (``run <task>``, a
CONSUMER span) continues that trace, and is the current span while the task runs, so what the
task does (its own kicks, its HTTP calls) joins the trace too. Status transitions are span
events: ``pending`` / ``scheduled`` on the kick, ``started`` and the run's outcome
(``success``, ``failure``, ``aborted``) on the run.

It replaces taskiq's ``OpenTelemetryMiddleware`` rather than running beside it (both would
trace every kick and run twice); it reads and writes the same W3C labels, so a producer using
taskiq's middleware and a worker using this one (or the reverse) still share a trace.
"""

from __future__ import annotations

import logging
import time
from contextvars import Token
from typing import Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from taskiq_kit._compat import require

require("opentelemetry", extra="tracing", feature="taskiq_kit.observability.tracing")

from opentelemetry import context as otel_context  # noqa: E402 - after the check of the extra
from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.context import Context  # noqa: E402
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer  # noqa: E402

from taskiq_kit.abort.running import CURRENT  # noqa: E402
from taskiq_kit.exceptions import TaskAbortedError  # noqa: E402
from taskiq_kit.labels import DUE_AT, RETRIES, label_float  # noqa: E402
from taskiq_kit.observability.common import queue_of  # noqa: E402

logger = logging.getLogger("taskiq_kit.tracing")

#: Name of the kit's tracer (its instrumentation scope).
TRACER_NAME = "taskiq_kit"
#: Name of the span events that record status transitions; the status is their attribute.
STATUS_EVENT = "taskiq_kit.status"


#: Attributes of the message object (not fields: never serialised) holding its spans.
_SEND_SPAN = "_taskiq_kit_send_span"
_RUN_SPAN = "_taskiq_kit_run_span"


class _Run:
    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: Token[Context]) -> None:
        self.span = span
        self.token = token


def _attributes(message: TaskiqMessage, queue: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "taskiq",
        "messaging.operation.name": "send",
        "messaging.message.id": message.task_id,
        "messaging.destination.name": queue,
        "taskiq.task_name": message.task_name,
    }
    retries = label_float(message.labels.get(RETRIES))
    if retries:
        attributes["taskiq.retries"] = int(retries)
    return attributes


def _carrier(labels: dict[str, Any]) -> dict[str, str]:
    """The string labels of a message: where the propagator finds the trace context."""
    return {key: value for key, value in labels.items() if isinstance(value, str)}


class TracingMiddleware(TaskiqMiddleware):
    """Spans around kicks and runs, the trace context carried in the message labels.

    Args:
        tracer: the tracer to use (default: ``trace.get_tracer("taskiq_kit")`` of the global
            tracer provider, looked up when the middleware is made).

    """

    def __init__(self, tracer: Tracer | None = None) -> None:
        super().__init__()
        self.tracer = tracer if tracer is not None else trace.get_tracer(TRACER_NAME)

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Start the kick's span and put its context in the message labels.

        The span is not made current: a kick that fails (no ``post_send``) leaves the caller's
        context as it was; its span is then never ended, so never exported.
        """
        queue = queue_of(self.broker, message.labels)
        span = self.tracer.start_span(
            f"send {message.task_name}",
            kind=SpanKind.PRODUCER,
            attributes=_attributes(message, queue),
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        message.labels.update(carrier)
        # Kept on the message (not in a dict of the middleware): a kick that fails never reaches
        # post_send, and its span then goes with the message.
        object.__setattr__(message, _SEND_SPAN, span)
        return message

    def post_send(self, message: TaskiqMessage) -> None:
        """Record the kick's status (``pending`` or ``scheduled``) and end its span."""
        span = message.__dict__.pop(_SEND_SPAN, None)
        if not isinstance(span, Span):
            return
        due = label_float(message.labels.get(DUE_AT))
        status = "scheduled" if due is not None and due > time.time() else "pending"
        attributes: dict[str, Any] = {"status": status}
        if due is not None:
            attributes["due_at"] = due
        span.add_event(STATUS_EVENT, attributes)
        span.end()

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Start the run's span in the kick's trace and make it current for the task."""
        run = CURRENT.get()
        if run is not None and run.task_id == message.task_id and run.skipped:
            return message  # a duplicate delivery, or aborted before it started: no run
        parent = propagate.extract(_carrier(message.labels))
        attributes = _attributes(message, queue_of(self.broker, message.labels))
        attributes["messaging.operation.name"] = "process"
        span = self.tracer.start_span(
            f"run {message.task_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        span.add_event(STATUS_EVENT, {"status": "started"})
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        object.__setattr__(message, _RUN_SPAN, _Run(span, token))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Record the run's outcome and end its span."""
        run = message.__dict__.pop(_RUN_SPAN, None)
        if not isinstance(run, _Run):
            return
        span = run.span
        error = result.error
        if isinstance(error, TaskAbortedError):
            span.add_event(STATUS_EVENT, {"status": "aborted"})
        elif result.is_err:
            if isinstance(error, BaseException):
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            span.add_event(STATUS_EVENT, {"status": "failure"})
        else:
            span.add_event(STATUS_EVENT, {"status": "success"})
        span.set_attribute("taskiq.execution_time", result.execution_time)
        span.end()
        otel_context.detach(run.token)
