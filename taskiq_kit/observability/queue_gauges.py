"""The queue gauges: the transport's queue figures, read when Prometheus scrapes, cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from taskiq.abc.broker import AsyncBroker

from taskiq_kit._compat import require

require("prometheus_client", extra="metrics", feature="taskiq_kit.observability.metrics")

from prometheus_client.core import GaugeMetricFamily  # noqa: E402 - after the check of the extra
from prometheus_client.registry import Collector  # noqa: E402

from taskiq_kit.inspect.api import queue_figures  # noqa: E402
from taskiq_kit.inspect.models import QueueFigures  # noqa: E402

logger = logging.getLogger("taskiq_kit.metrics")


class QueueCollector(Collector):
    """Queue gauges read from the transport (``inspect.queue_figures``), cached ``ttl`` seconds.

    :meth:`refresh` reads them (async, on the broker's loop); :meth:`collect` (called by the
    registry on a scrape) only returns what the last refresh read.
    """

    def __init__(self, broker: AsyncBroker, *, ttl: float = 5.0) -> None:
        self.broker = broker
        self.ttl = ttl
        self._figures: list[QueueFigures] = []
        self._read_at = float("-inf")
        self._up = 0.0
        self._failure: str | None = None
        self._lock: asyncio.Lock | None = None

    async def refresh(self) -> None:
        """Read the queue figures again if the cached ones are older than ``ttl``."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._read_at < self.ttl:
                return
            try:
                self._figures = await queue_figures(self.broker)
                self._up = 1.0
                self._failure = None
            except Exception as exc:  # noqa: BLE001 - a scrape serves the rest whatever failed
                # Logged when the failure changes, not on every scrape.
                failure = f"{type(exc).__name__}: {exc}"
                if failure != self._failure:
                    logger.warning("Reading queue figures for the metrics failed: %s", failure)
                self._failure = failure
                self._up = 0.0
            self._read_at = time.monotonic()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """The gauges of the last refresh."""
        families = {
            "ready": GaugeMetricFamily(
                "taskiq_kit_queue_ready_messages",
                "Messages waiting for a worker.",
                labels=["queue"],
            ),
            "in_flight": GaugeMetricFamily(
                "taskiq_kit_queue_in_flight_messages",
                "Messages delivered to a worker, not settled yet.",
                labels=["queue"],
            ),
            "delayed": GaugeMetricFamily(
                "taskiq_kit_queue_delayed_messages",
                "Messages waiting for their due time (delay / eta).",
                labels=["queue"],
            ),
            "dead_lettered": GaugeMetricFamily(
                "taskiq_kit_queue_dead_lettered_messages",
                "Messages in the dead-letter queue.",
                labels=["queue"],
            ),
        }
        consumers = GaugeMetricFamily(
            "taskiq_kit_queue_consumers", "Workers consuming the queue.", labels=["queue"]
        )
        for queue in self._figures:
            for field, family in families.items():
                family.add_metric([queue.name], float(getattr(queue, field)))
            if queue.consumers is not None:
                consumers.add_metric([queue.name], float(queue.consumers))
        yield from families.values()
        yield consumers
        yield GaugeMetricFamily(
            "taskiq_kit_queue_figures_up",
            "1 if the last read of the queue figures worked, else 0.",
            value=self._up,
        )
