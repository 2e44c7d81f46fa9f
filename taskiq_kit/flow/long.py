"""Long tasks: runs that outlive the transport's acknowledgement timeout, kept in the store.

RabbitMQ closes a consumer's channel when a delivery stays unacknowledged longer than its
``consumer_timeout`` (30 minutes by default), and delivers the message again: a task running
that long would run twice, and again and again, until the delivery gate dead-letters it as a
task that keeps dying. The kit instead *keeps* such a run's message in the store:

1. A run that is labelled ``long`` (``@broker.task(long=True)``), or that is still running
   ``long_task_after`` seconds after its delivery, has its message body written to the store
   with a *lease* (an expiry ``lease`` seconds ahead, owned by this worker), and only then is its
   delivery acknowledged: the transport's timeout can no longer fire.
2. While the run goes on, the worker renews the lease every ``lease / 3`` seconds.
3. When the run ends (its result saved), the lease and the kept message are deleted.
4. Every worker sweeps the store every ``lease / 3`` seconds: a lease that expired belongs to a
   worker that died (or lost the store for a whole lease). The first sweep to *claim* it (one
   atomic step: the lease moves to the sweeper, so no other sweep takes it) sends the message
   again, then deletes the kept copy. The task runs again, once.
5. A delivery the transport repeats (a channel lost between the store write and the ack) is
   dropped when the store keeps its task: the store owns that message now.

A message re-sent by a sweep counts its re-sends; past ``max_resends`` it goes to the dead-letter
queue instead (a long task that kills every worker that runs it). The re-sent delivery is a
first delivery for the transport, so RabbitMQ's redelivery count and the record's count of
unfinished runs (the poison guard of :mod:`taskiq_kit.delivery`) do not count it twice.

This module holds the policy; a transport provides the :class:`InFlight` deliveries and the
:class:`Transport` calls, a store the :class:`LeaseStore` (see :mod:`taskiq_kit.flow.long_parts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskiq_kit.flow.long_parts import (
    RESENDS_HEADER,
    InFlight,
    KeptMessage,
    LeaseStore,
    Transport,
)

if TYPE_CHECKING:
    from taskiq_kit.results.backend import KitResultBackend

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_LONG_AFTER",
    "DEFAULT_MAX_RESENDS",
    "LONG_LABEL",
    "RESENDS_HEADER",
    "InFlight",
    "KeptMessage",
    "LeaseStore",
    "LongTaskKeeper",
    "Transport",
    "labelled_long",
    "lease_store_of",
]

logger = logging.getLogger("taskiq_kit.flow")

#: The task option / label marking a task long: its delivery is settled as soon as it runs.
LONG_LABEL = "long"
#: Seconds of a lease by default; renewed every third of it.
DEFAULT_LEASE = 60.0
#: Seconds after its delivery an unlabelled run is kept by default: half RabbitMQ's default
#: ``consumer_timeout`` (30 minutes).
DEFAULT_LONG_AFTER = 900.0
#: Re-sends of one kept message (its workers died) before it is dead-lettered.
DEFAULT_MAX_RESENDS = 5
#: Kept messages one sweep claims at most.
SWEEP_BATCH = 100


def labelled_long(body: bytes) -> bool | None:
    """The ``long`` label of a taskiq JSON body: ``True``/``False``, or ``None`` when unset."""
    if b'"long"' not in body:
        return None  # the common case, without parsing
    try:
        labels = json.loads(body).get("labels")
    except (ValueError, AttributeError):
        return None
    if not isinstance(labels, dict) or LONG_LABEL not in labels:
        return None
    value: Any = labels[LONG_LABEL]
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def lease_store_of(backend: KitResultBackend[Any]) -> LeaseStore | None:
    """The lease store of a result backend: Redis and PostgreSQL keep leases; memory cannot.

    A process-local store dies with its worker, and another worker could never see its leases.
    """
    if backend.process_local:
        return None
    with contextlib.suppress(ImportError):  # the redis extra may not be installed
        from taskiq_kit.results.redis import RedisResultBackend  # noqa: PLC0415

        if isinstance(backend, RedisResultBackend):
            from taskiq_kit.results.redis_long import RedisLeaseStore  # noqa: PLC0415

            return RedisLeaseStore(backend)
    with contextlib.suppress(ImportError):  # the postgres extra may not be installed
        from taskiq_kit.results.postgres import PostgresResultBackend  # noqa: PLC0415

        if isinstance(backend, PostgresResultBackend):
            from taskiq_kit.results.postgres_long import PostgresLeaseStore  # noqa: PLC0415

            return PostgresLeaseStore(backend)
    return None


class LongTaskKeeper:
    """Keeps long runs' messages in the store, renews their leases, re-sends the orphaned ones.

    One per consuming worker process; :meth:`run` until the worker stops consuming.

    Args:
        store: where messages and leases are kept.
        transport: the deliveries in flight, and how to send a message again.
        lease: seconds of a lease; renewed (and the store swept) every third of it.
        long_after: seconds after its delivery a run is kept although not labelled long
            (``None``: only labelled runs).
        max_resends: re-sends of one message before it is dead-lettered instead.
        check_every: seconds between two looks at the deliveries in flight.

    """

    def __init__(
        self,
        store: LeaseStore,
        transport: Transport,
        *,
        lease: float = DEFAULT_LEASE,
        long_after: float | None = DEFAULT_LONG_AFTER,
        max_resends: int = DEFAULT_MAX_RESENDS,
        check_every: float = 1.0,
    ) -> None:
        if lease <= 0:
            raise ValueError(f"long_task_lease must be > 0 seconds, got {lease!r}")
        if long_after is not None and long_after < 0:
            raise ValueError(f"long_task_after must be >= 0 seconds or None, got {long_after!r}")
        self.store = store
        self.transport = transport
        self.lease = lease
        self.long_after = long_after
        self.max_resends = max_resends
        self.check_every = min(check_every, lease / 3)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        #: Task ids whose message this worker keeps (settled early, run not ended).
        self.held: set[str] = set()
        #: Messages this worker's sweeps sent again, and dead-lettered.
        self.resent = 0
        self.dead_lettered = 0
        self._labels: dict[str, bool | None] = {}

    async def run(self) -> None:
        """Check the deliveries every ``check_every`` s; renew and sweep every ``lease / 3`` s."""
        period = self.lease / 3
        next_lease_work = 0.0
        while True:
            try:
                await self.keep_due()
                now = time.monotonic()
                if now >= next_lease_work:
                    next_lease_work = now + period
                    await self.renew()
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Long-task upkeep failed; trying again.")
            await asyncio.sleep(self.check_every)

    def _wants_keeping(self, delivery: InFlight, now: float) -> bool:
        task_id = delivery.task_id
        if task_id not in self._labels:
            if len(self._labels) > 10_000:
                self._labels.clear()
            self._labels[task_id] = labelled_long(delivery.body)
        label = self._labels[task_id]
        if label is not None:
            return label
        return self.long_after is not None and now - delivery.received_at >= self.long_after

    async def keep_due(self) -> None:
        """Keep every run in flight that is labelled long or has run ``long_after`` seconds."""
        now = time.monotonic()
        for delivery in list(self.transport.in_flight()):
            if delivery.kept or not self._wants_keeping(delivery, now):
                continue
            message = delivery.kept_message()
            # The store first: a crash in between leaves the message in RabbitMQ (redelivered,
            # then dropped as kept) and in the store (re-sent once its lease expires).
            await self.store.keep(message, owner=self.owner, until=time.time() + self.lease)
            self.held.add(message.task_id)
            self._labels.pop(message.task_id, None)
            await delivery.settle_early(self._ended(message.task_id))
            logger.info(
                "Task %s (%s) is long: its message is kept in the store under a lease.",
                message.task_id,
                message.task_name,
            )

    def _ended(self, task_id: str) -> Callable[[], Awaitable[None]]:
        async def release() -> None:
            self.held.discard(task_id)
            try:
                await self.store.release(task_id, owner=self.owner)
            except Exception as exc:  # noqa: BLE001 - the run is done; a sweep would re-send it
                logger.warning(
                    "Cannot release the lease of long task %s (%s): it may run again.",
                    task_id,
                    type(exc).__name__,
                )

        return release

    async def renew(self) -> None:
        """Extend the leases of the runs still going on here."""
        if not self.held:
            return
        lost = await self.store.renew(
            sorted(self.held), owner=self.owner, until=time.time() + self.lease
        )
        for task_id in lost:
            logger.error(
                "The lease of long task %s was lost (not renewed within %.0f s): another worker "
                "may run it again.",
                task_id,
                self.lease,
            )

    async def sweep(self) -> int:
        """Send again the messages whose lease expired (their worker died); return how many."""
        claimed = await self.store.claim_expired(
            now=time.time(), owner=self.owner, until=time.time() + self.lease, limit=SWEEP_BATCH
        )
        for message in claimed:
            if message.task_id in self.held:
                continue  # our own run, late renewing: keep it
            if message.resends >= self.max_resends:
                await self.transport.dead_letter(
                    message,
                    f"long task re-sent {message.resends} times after its worker died "
                    f"(limit {self.max_resends}); it may be crashing its worker",
                )
                self.dead_lettered += 1
            else:
                await self.transport.resend(message)
                self.resent += 1
                logger.warning(
                    "Long task %s (%s): its worker stopped renewing its lease; sent again.",
                    message.task_id,
                    message.task_name,
                )
            await self.store.release(message.task_id, owner=self.owner)
        return len(claimed)
