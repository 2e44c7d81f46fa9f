"""``RedisBroker``: the kit broker on Redis streams, run by ``taskiq worker module:broker``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from taskiq.message import BrokerMessage

from taskiq_kit.abort.signal import AbortSignal, RedisAbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.delivery import Delivery
from taskiq_kit.exceptions import BrokerNotAvailableError, RedisSettingError
from taskiq_kit.labels import Timing
from taskiq_kit.redis import scripts
from taskiq_kit.redis.batching import Batcher
from taskiq_kit.redis.connect import RedisClient, close_client, make_client, ping, topology
from taskiq_kit.redis.consumer import TRANSIENT, StreamConsumer
from taskiq_kit.redis.delay import DelayPromoter
from taskiq_kit.redis.durability import ReplicaAcks
from taskiq_kit.redis.heartbeat import check_heartbeat
from taskiq_kit.redis.inspect import RedisInspector
from taskiq_kit.redis.keys import DEFAULT_PREFIX, DEFAULT_QUEUE, RedisKeys
from taskiq_kit.redis.kicks import KickPublisher, same_server
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.writes import RecordWrite
from taskiq_kit.urls import redact

if TYPE_CHECKING:
    pass

logger = logging.getLogger("taskiq_kit.redis")


class RedisBroker(KitBroker):
    """Acknowledged, at-least-once delivery on a Redis stream, with delays and dead-lettering.

    Kicks append to the queue's ready stream; workers read it through one consumer group and
    acknowledge (and delete) each entry once its result is saved. Each worker beats every
    ``heartbeat_interval``; when one dies its entries go to a live worker once its heartbeat is
    ``dead_after`` seconds old (workers without a heartbeat: after ``idle_timeout``), while a live
    worker keeps its messages however long its tasks run. Delayed tasks wait in a
    sorted set until a promoter (every consuming worker runs one) moves them to the stream.
    Every key is hash-tagged with the queue name (see :class:`~taskiq_kit.redis.keys.RedisKeys`).

    On a Redis Cluster (``redis+cluster://h1:p1,h2:p2/``) every key of a queue lives in the slot
    of its hash tag, so every script runs on one node; behind Sentinels
    (``redis+sentinel://s1:p1,s2:p2/<service>/<db>``) the broker follows the master through
    failovers (see ``replica_acks`` for what a failover may lose).

    Args:
        url: ``redis://`` or ``rediss://`` URL of the server, ``redis+cluster://`` of a Redis
            Cluster, ``redis+sentinel://`` of Sentinels watching the master.
        result_backend: where results, status records and progress live.
        queue_name: the queue; workers of one queue share its tasks.
        key_prefix: first part of every key.
        idle_timeout: seconds after which a message held by a worker that neither settles it nor
            refreshes it is redelivered (the backstop for workers without a heartbeat).
        heartbeat_interval: seconds between two heartbeats of a consuming worker.
        dead_after: seconds without a heartbeat after which a worker is dead and its messages go
            to a live one; at least twice ``heartbeat_interval``.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.
        read_count: messages a worker reads per round trip; bounds duplicates after a crash.
        promote_batch: most delayed messages one promoter run moves to the stream.
        max_promoter_sleep: longest sleep of the promoter between two runs, in seconds.
        dead_letter_maxlen: approximate cap of the dead-letter stream (oldest dropped first).
        connect_timeout: seconds to wait for a connection to Redis, or for a free one in the pool.
        max_connections: size of the connection pool.
        abort_signal: how abort requests reach the workers; by default Redis pub/sub on ``url``.
        abort_poll_interval: seconds between the workers' checks for aborts they missed.
        replica_acks: replicas that must acknowledge a kick (``WAIT``) before it returns; 0
            (the default) returns once the master has it, which a failover right after may lose.
            Not available on a Redis Cluster.
        replica_ack_timeout: seconds a kick waits for ``replica_acks``; it raises
            :class:`~taskiq_kit.exceptions.BrokerNotAvailableError` when they do not come.
        **connection_options: passed to redis-py's connection pool (or cluster client).

    Raises:
        RedisSettingError: for a queue name or prefix with braces or spaces, or an option out
            of range (e.g. ``read_count=0``, ``dead_after`` below twice ``heartbeat_interval``).

    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        result_backend: KitResultBackend[Any],
        queue_name: str = DEFAULT_QUEUE,
        key_prefix: str = DEFAULT_PREFIX,
        idle_timeout: float = 30.0,
        heartbeat_interval: float = 1.0,
        dead_after: float = 3.0,
        max_delivery_attempts: int = 5,
        read_count: int = 32,
        promote_batch: int = 500,
        max_promoter_sleep: float = 1.0,
        dead_letter_maxlen: int = 100_000,
        connect_timeout: float = 5.0,
        max_connections: int = 50,
        abort_signal: AbortSignal | None = None,
        abort_poll_interval: float = 1.0,
        replica_acks: int = 0,
        replica_ack_timeout: float = 1.0,
        **connection_options: Any,
    ) -> None:
        super().__init__(
            result_backend=result_backend,
            max_delivery_attempts=max_delivery_attempts,
            # Scoped by prefix, queue (and the URL's database): pub/sub is server-wide.
            abort_signal=abort_signal or RedisAbortSignal(url, scope=f"{key_prefix}:{queue_name}"),
            abort_poll_interval=abort_poll_interval,
        )
        for setting, value, minimum in (
            ("idle_timeout", idle_timeout, 0.01),
            ("max_promoter_sleep", max_promoter_sleep, 0.001),
            ("read_count", read_count, 1),
            ("promote_batch", promote_batch, 1),
            ("max_connections", max_connections, 4),
            ("replica_acks", replica_acks, 0),
            ("replica_ack_timeout", replica_ack_timeout, 0.001),
        ):
            if value < minimum:
                raise RedisSettingError(
                    setting=setting, value=value, reason=f"must be >= {minimum}"
                )
        check_heartbeat(heartbeat_interval, dead_after)
        self.topology = topology(url)
        if replica_acks and self.topology.kind == "cluster":
            raise RedisSettingError(
                setting="replica_acks",
                value=replica_acks,
                reason="is not available on a Redis Cluster (use a replica-less cluster or 0)",
            )
        self.url = url
        self.replica_acks = (
            ReplicaAcks(replica_acks, replica_ack_timeout, redact(url)) if replica_acks else None
        )
        self.keys = RedisKeys(queue=queue_name, prefix=key_prefix)
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.read_count = read_count
        self.promote_batch = promote_batch
        self.max_promoter_sleep = max_promoter_sleep
        self.dead_letter_maxlen = dead_letter_maxlen
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.connection_options = connection_options
        self._client: RedisClient | None = None
        self._promoter: DelayPromoter | None = None
        self._consumer: StreamConsumer | None = None
        self._promoting: asyncio.Task[None] | None = None
        self._publisher: Batcher[bytes] | None = None
        #: The result store checked last, and the shared pipeline when it is on this server.
        self._kicks: tuple[object, KickPublisher | None] | None = None
        self.inspector = RedisInspector(self, self.keys, lambda: self.client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBroker:
        """Build a broker for ``url``; ``options`` are the constructor's keyword arguments."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"RedisBroker({redact(self.url)!r}, queue_name={self.keys.queue!r})"

    @property
    def client(self) -> RedisClient:
        """The Redis client, created on first use (binary responses).

        Its pool blocks (up to ``connect_timeout``) rather than fails when all
        ``max_connections`` are busy, so a burst of kicks waits instead of raising.
        """
        if self._client is None:
            self._client = self._new_client(self.max_connections)
        return self._client

    def _new_client(self, max_connections: int) -> RedisClient:
        options: dict[str, Any] = {
            "socket_keepalive": True,
            **self.connection_options,
            "decode_responses": False,
        }
        return make_client(
            self.url,
            max_connections=max_connections,
            pool_timeout=self.connect_timeout,
            connect_timeout=self.connect_timeout,
            **options,
        )

    @property
    def publisher(self) -> Batcher[bytes]:
        """Appends to the ready stream; concurrent kicks share one round trip."""
        if self._publisher is None:
            client = self.client
            script = client.register_script(scripts.PUBLISH)
            ready = self.keys.ready
            acks = self.replica_acks

            async def append(bodies: list[bytes]) -> None:
                if acks is not None and isinstance(client, Redis):
                    await acks.run_script(client, script, [ready], list(bodies))
                else:
                    await script(keys=[ready], args=bodies)

            self._publisher = Batcher(append)
        return self._publisher

    @property
    def promoter(self) -> DelayPromoter:
        """The delay store and promoter of this queue."""
        if self._promoter is None:
            self._promoter = DelayPromoter(
                self.client,
                self.keys,
                batch=self.promote_batch,
                max_sleep=self.max_promoter_sleep,
                acks=self.replica_acks,
            )
        return self._promoter

    async def connect(self) -> None:
        """Check that Redis answers (failing fast in a client, naming the URL).

        Raises:
            BrokerNotAvailableError: when Redis does not answer within ``connect_timeout``.
            AccessRefusedError: when Redis refuses the URL's credentials or database.

        """
        target = f"Redis at {redact(self.url)}"
        await ping(self.client, url=self.url, target=target, timeout=self.connect_timeout)

    async def shutdown(self) -> None:
        """Stop consuming, hand unsettled messages back to the group, close the connections."""
        await self._stop_consuming()
        await super().shutdown()
        if self._client is not None:
            client, self._client, self._promoter, self._publisher = self._client, None, None, None
            self._kicks = None
            with contextlib.suppress(*TRANSIENT):
                await close_client(client)

    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Append ``message`` to the ready stream, or store it until ``timing.due_at``.

        Raises:
            BrokerNotAvailableError: when Redis cannot be reached.

        """
        try:
            if timing.delay_from(time.time()) > 0 and timing.due_at is not None:
                entry_id = f"{message.task_id}:{uuid.uuid4().hex}"
                await self.promoter.schedule(entry_id, message.message, timing.due_at)
            else:
                await self.publisher.submit(message.message)
        except TRANSIENT as exc:
            raise BrokerNotAvailableError(
                target=redact(self.url), timeout=self.connect_timeout, reason=str(exc)
            ) from exc

    async def publish_kicked(
        self, message: BrokerMessage, timing: Timing, write: RecordWrite
    ) -> None:
        """Record the kick and append it to the ready stream in one round trip.

        When the result store is a Redis store on this broker's server, the record's write and
        the ``XADD`` go in one pipeline (the write first), shared by every kick of the same
        moment. Otherwise (another store, or a delayed kick) the record is written first.

        Raises:
            BrokerNotAvailableError: when Redis cannot be reached.

        """
        store = self.result_backend
        route = self._kicks
        if route is None or route[0] is not store:
            # Imported here: the Redis result store imports this package (its connect module).
            from taskiq_kit.results.redis import RedisResultBackend  # noqa: PLC0415

            publisher = None
            client = self.client
            if (
                isinstance(store, RedisResultBackend)
                and isinstance(client, Redis)
                and same_server(store, self.url)
            ):
                publisher = KickPublisher(client, store, self.keys.ready, acks=self.replica_acks)
            route = self._kicks = (store, publisher)
        kicks = route[1]
        if kicks is None or timing.delay_from(time.time()) > 0:
            await super().publish_kicked(message, timing, write)
            return
        try:
            await kicks.submit(message.message, write)
        except TRANSIENT as exc:
            raise BrokerNotAvailableError(
                target=redact(self.url), timeout=self.connect_timeout, reason=str(exc)
            ) from exc

    def queue_of(self, labels: dict[str, Any]) -> str | None:
        """This broker's queue (one per broker)."""
        return self.keys.queue

    def consumed_queues(self) -> list[str]:
        """This broker's queue."""
        return [self.keys.queue]

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield messages from the ready stream; run the delay promoter meanwhile."""
        await self._stop_consuming()
        consumer = StreamConsumer(
            self.client,
            self.keys,
            name=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            idle_timeout=self.idle_timeout,
            read_count=self.read_count,
            dead_letter_maxlen=self.dead_letter_maxlen,
            connect=functools.partial(self._new_client, 1),
            heartbeat_interval=self.heartbeat_interval,
            dead_after=self.dead_after,
        )
        self._consumer = consumer
        self.promoter.stopping = False
        self._promoting = asyncio.create_task(self.promoter.run(), name="taskiq-kit-redis-promoter")
        async for delivery in consumer.deliveries():
            yield delivery

    async def _stop_consuming(self) -> None:
        if self._promoting is not None:
            promoting, self._promoting = self._promoting, None
            if self._promoter is not None:
                self._promoter.stopping = True
            promoting.cancel()
            await asyncio.wait([promoting], timeout=3.0)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
