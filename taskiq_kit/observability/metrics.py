"""Prometheus metrics of a kit broker: tasks, run time, queue wait, in-flight, queues, aborts.

Install the extra (``pip install taskiq-kit[metrics]``) and add the middleware to the broker::

    broker = make_broker("redis://...").with_middlewares(MetricsMiddleware(port=9100))

Under ``taskiq worker app:broker --workers N`` each worker process serves its own metrics on
``port + N`` (worker-0 on 9100, worker-1 on 9101...): one scrape target per process, the way
Prometheus counts processes best; nothing is shared between them, so no directory of files has
to be cleaned between runs. The queue gauges are read from the transport on scrape (cached a
few seconds) by worker-0 only, so each queue has one series per worker group.

In the web app, mount :func:`metrics_app` (the API process's kicks and the queue gauges)::

    app.mount("/metrics", metrics_app(broker))

Names follow Prometheus conventions: ``taskiq_kit_`` prefix, base units (seconds), ``_total``
on counters. See docs/observability.md for the list and the PromQL of a dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from taskiq_kit._compat import require

require("prometheus_client", extra="metrics", feature="taskiq_kit.observability.metrics")

from prometheus_client import (  # noqa: E402 - after the check of the extra
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_asgi_app,
)

from taskiq_kit.abort.running import CURRENT  # noqa: E402
from taskiq_kit.exceptions import TaskAbortedError, TaskiqKitError  # noqa: E402
from taskiq_kit.labels import DUE_AT, KICKED_AT, RETRIES, label_float  # noqa: E402
from taskiq_kit.observability.common import queue_of, worker_index  # noqa: E402
from taskiq_kit.observability.queue_gauges import QueueCollector  # noqa: E402
from taskiq_kit.observability.server import MetricsServer  # noqa: E402
from taskiq_kit.results.api import get_task_record  # noqa: E402

logger = logging.getLogger("taskiq_kit.metrics")

#: Run times and queue waits: from 5 ms to an hour.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
)  # fmt: skip
#: Abort latencies: from 5 ms to 30 s.
ABORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

_TASK_LABELS = ("task_name", "queue")

__all__ = [
    "ABORT_BUCKETS",
    "DURATION_BUCKETS",
    "KitMetrics",
    "MetricsMiddleware",
    "MetricsServer",
    "QueueCollector",
    "Series",
    "metrics_app",
]


class KitMetrics:
    """The kit's task metrics, registered in ``registry`` (a registry of their own by default).

    Attributes:
        registry: where the metrics are registered (serve it, or pass the default ``REGISTRY``
            to serve them with your own).
        tasks: finished runs per task name, queue and outcome (``success``, ``failure``,
            ``aborted``).
        started: runs started.
        kicked: tasks sent (by this process).
        runtime: run time of each run (seconds).
        queue_wait: start minus due time (seconds): time spent waiting for a worker, delays
            not counted.
        in_progress: runs executing now.
        abort_latency: from the abort request to the running task stopping (seconds).

    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.tasks = Counter(
            "taskiq_kit_tasks",
            "Task runs finished, per outcome (success, failure, aborted).",
            [*_TASK_LABELS, "status"],
            registry=reg,
        )
        self.started = Counter(
            "taskiq_kit_tasks_started", "Task runs started.", _TASK_LABELS, registry=reg
        )
        self.kicked = Counter(
            "taskiq_kit_tasks_kicked", "Tasks sent by this process.", _TASK_LABELS, registry=reg
        )
        self.retries = Counter(
            "taskiq_kit_task_retries",
            "Task runs that were retries of a failed run.",
            _TASK_LABELS,
            registry=reg,
        )
        self.runtime = Histogram(
            "taskiq_kit_task_runtime_seconds",
            "Run time of task runs.",
            _TASK_LABELS,
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.queue_wait = Histogram(
            "taskiq_kit_task_queue_wait_seconds",
            "From when a task was due (its kick, or its delay / eta) to its start.",
            _TASK_LABELS,
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.in_progress = Gauge(
            "taskiq_kit_tasks_in_progress", "Task runs executing now.", _TASK_LABELS, registry=reg
        )
        self.abort_latency = Histogram(
            "taskiq_kit_abort_latency_seconds",
            "From an abort request to the running task stopping.",
            _TASK_LABELS,
            buckets=ABORT_BUCKETS,
            registry=reg,
        )
        self.queues: QueueCollector | None = None
        self._series: dict[tuple[str, str], Series] = {}

    def series(self, task_name: str, queue: str) -> Series:
        """The metrics of ``task_name`` on ``queue``."""
        key = (task_name, queue)
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = Series(self, key)
        return found

    def watch_queues(self, broker: AsyncBroker, *, ttl: float = 5.0) -> QueueCollector:
        """Add the queue gauges of ``broker`` (read on scrape, cached ``ttl`` seconds); once."""
        if self.queues is None:
            self.queues = QueueCollector(broker, ttl=ttl)
            self.registry.register(self.queues)
        return self.queues


class Series:
    """The children of the task metrics for one (task name, queue): looked up once, then reused.

    ``labels()`` of prometheus-client takes a lock and checks the values on every call; a task
    run touches six metrics, so the kit keeps each pair's children.
    """

    __slots__ = (
        "abort_latency",
        "in_progress",
        "kicked",
        "labels",
        "metrics",
        "outcomes",
        "queue_wait",
        "retries",
        "runtime",
        "started",
    )

    def __init__(self, metrics: KitMetrics, labels: tuple[str, str]) -> None:
        self.metrics = metrics
        self.labels = labels
        self.started = metrics.started.labels(*labels)
        self.kicked = metrics.kicked.labels(*labels)
        self.retries = metrics.retries.labels(*labels)
        self.runtime = metrics.runtime.labels(*labels)
        self.queue_wait = metrics.queue_wait.labels(*labels)
        self.in_progress = metrics.in_progress.labels(*labels)
        self.abort_latency = metrics.abort_latency.labels(*labels)
        self.outcomes: dict[str, Counter] = {}

    def outcome(self, status: str) -> Counter:
        """The ``taskiq_kit_tasks_total`` child of ``status``."""
        child = self.outcomes.get(status)
        if child is None:
            child = self.outcomes[status] = self.metrics.tasks.labels(*self.labels, status)
        return child


#: Attribute of a message (not a field: never serialised) holding its run's metrics.
_RUN = "_taskiq_kit_metrics_run"


class MetricsMiddleware(TaskiqMiddleware):
    """Counts and times tasks; in worker processes, serves the metrics over HTTP.

    Add it after the kit's own middleware (``broker.with_middlewares(...)`` does).

    Args:
        metrics: the metrics to update (a new :class:`KitMetrics` by default).
        port: the port worker-0 serves ``/metrics`` on; worker-N serves on ``port + N``.
            ``None``: serve nothing (mount :func:`metrics_app`, or serve ``metrics.registry``
            yourself).
        addr: the address to listen on.
        queue_metrics: serve the queue gauges (read from the transport on scrape); by default
            only worker-0 does.
        queue_cache: seconds the queue figures are cached between scrapes.

    """

    def __init__(
        self,
        metrics: KitMetrics | None = None,
        *,
        port: int | None = 9100,
        addr: str = "0.0.0.0",  # noqa: S104 - Prometheus scrapes from another host
        queue_metrics: bool | None = None,
        queue_cache: float = 5.0,
    ) -> None:
        super().__init__()
        self.metrics = metrics if metrics is not None else KitMetrics()
        self.port = port
        self.addr = addr
        self.queue_metrics = queue_metrics
        self.queue_cache = queue_cache
        self.server: MetricsServer | None = None

    def _series(self, message: TaskiqMessage) -> Series:
        return self.metrics.series(message.task_name, queue_of(self.broker, message.labels))

    async def startup(self) -> None:
        """In a worker process, start serving the metrics on ``port + worker number``."""
        if not self.broker.is_worker_process or self.port is None:
            return
        index = worker_index()
        refresh: Callable[[], Awaitable[None]] | None = None
        if self.queue_metrics if self.queue_metrics is not None else index == 0:
            refresh = self.metrics.watch_queues(self.broker, ttl=self.queue_cache).refresh
        self.server = MetricsServer(
            self.metrics.registry,
            port=self.port + index,
            addr=self.addr,
            refresh=refresh,
            loop=asyncio.get_running_loop(),
        )
        try:
            self.server.start()
        except OSError:
            # A taken port must not stop the worker from running tasks: say so, go on.
            logger.exception(
                "Worker %d cannot serve metrics on %s:%d; it runs without.",
                index,
                self.addr,
                self.port + index,
            )
            self.server = None
            return
        logger.info("Worker %d serves metrics on %s:%d.", index, self.addr, self.server.port)

    async def shutdown(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def post_send(self, message: TaskiqMessage) -> None:
        """Count a task sent."""
        self._series(message).kicked.inc()

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Count the start and the time the task waited for a worker."""
        run = CURRENT.get()
        if run is not None and run.task_id == message.task_id and run.skipped:
            return message  # a duplicate delivery, or aborted before it started: no run
        now = time.time()
        series = self._series(message)
        series.started.inc()
        series.in_progress.inc()
        retries = label_float(message.labels.get(RETRIES)) or 0
        if retries > 0:
            series.retries.inc()
        due = label_float(message.labels.get(DUE_AT))
        if due is None and retries == 0:
            # Not delayed: due when kicked. (A retry sent without a delay keeps its first
            # kick's time: its wait is unknown, so it is not observed.)
            due = label_float(message.labels.get(KICKED_AT))
        if due is not None:
            series.queue_wait.observe(max(0.0, now - due))
        object.__setattr__(message, _RUN, series)
        return message

    def post_execute(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """Count the outcome and the run time (and the abort latency of an aborted run).

        Synchronous (taskiq then awaits nothing) but for an aborted run, whose latency needs
        the record's ``abort_requested_at``.
        """
        series = message.__dict__.pop(_RUN, None)
        if not isinstance(series, Series):
            return None
        series.in_progress.dec()
        series.runtime.observe(result.execution_time)
        if isinstance(result.error, TaskAbortedError):
            series.outcome("aborted").inc()
            return self._abort_latency(message.task_id, series)
        series.outcome("failure" if result.is_err else "success").inc()
        return None

    async def _abort_latency(self, task_id: str, series: Series) -> None:
        stopped = time.time()
        try:
            record = await get_task_record(self.broker, task_id)
        except (TaskiqKitError, OSError):
            return
        if record.abort_requested_at is not None:
            latency = max(0.0, stopped - record.abort_requested_at)
            series.abort_latency.observe(latency)


def metrics_app(
    broker: AsyncBroker, metrics: KitMetrics | None = None, *, queue_cache: float = 5.0
) -> Callable[..., Awaitable[None]]:
    """An ASGI app serving ``metrics`` and the queue gauges of ``broker``; mount it in FastAPI.

    ``metrics`` defaults to those of the broker's :class:`MetricsMiddleware` (the kicks of this
    process), else to a new :class:`KitMetrics` holding the queue gauges only.
    """
    if metrics is None:
        found = [m for m in broker.middlewares if isinstance(m, MetricsMiddleware)]
        metrics = found[0].metrics if found else KitMetrics()
    queues = metrics.watch_queues(broker, ttl=queue_cache)
    inner = make_asgi_app(metrics.registry)

    async def app(
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http":
            await queues.refresh()
        await inner(scope, receive, send)

    return app
