"""The RabbitMQ broker's dead-letter box: list, replay and delete, over AMQP alone.

**Listing.** AMQP cannot peek: a listing consumes the dead-letter queue without
acknowledging, on a channel of its own, and closes it, which gives every message back. A dead
letter's id is the ``kit-dead-id`` header the kit writes when it dead-letters; a message RabbitMQ
dead-lettered itself (``x-death``: a quorum queue's delivery limit, a rejection) gets a digest of
its body and death record instead, equally stable.

**Replay.** On a transacted channel (AMQP ``tx``), per batch: take the dead letters, publish
each one's fresh kick to its queue, acknowledge the dead letters, commit; then write the
records back to ``pending``. The publishes and the
acknowledgements take effect together at the commit or not at all: a replaying process killed
before the commit leaves its batch in the dead-letter queue (RabbitMQ returns what a closed
channel held, and drops its uncommitted publishes), one killed after it has moved the batch
whole. A rerun therefore finds exactly the dead letters not yet sent. (A RabbitMQ node crashing
*during* a commit can apply part of it; the kit then errs towards sending a message twice, never
towards losing one.)
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiormq
from aio_pika.abc import AbstractChannel
from pamqp.commands import Basic

from taskiq_kit.exceptions import InvalidCursorError
from taskiq_kit.inspect.dead_letters import (
    REPLAY_BATCH,
    Progress,
    body_names,
    decode_cursor,
    encode_cursor,
    prepare_replays,
    preview,
    record_replays,
)
from taskiq_kit.inspect.models import DeadLetter, DeadLetterPage, ReplayReport
from taskiq_kit.rabbit.publisher import (
    DEAD_AT_HEADER,
    DEAD_ATTEMPT_HEADER,
    PERSISTENT,
    QUEUE_HEADER,
    REASON_HEADER,
    REPLAY_OF_HEADER,
    TASK_HEADER,
)
from taskiq_kit.rabbit.taking import Taken, Taking, close, death_of, text

if TYPE_CHECKING:
    from taskiq_kit.base import KitBroker
    from taskiq_kit.inspect.protocols import ProgressCallback
    from taskiq_kit.rabbit.connection import RabbitConnection
    from taskiq_kit.rabbit.topology import RabbitNames, Topology

#: Dead letters a listing reads at most (AMQP cannot peek: each listing takes them all and gives
#: them back); the ones beyond are counted in ``total`` but not listed.
LIST_SCAN_LIMIT = 10_000


def _order(letter: DeadLetter) -> tuple[float, str]:
    return (letter.dead_lettered_at or 0.0, letter.id)


def _position(cursor: str) -> tuple[float, str]:
    """The (time, id) a rabbit dead-letter cursor holds.

    Raises:
        InvalidCursorError: for anything else.

    """
    text = decode_cursor("rabbit", cursor)
    try:
        at, dead_id = json.loads(text)
    except (ValueError, TypeError):
        at, dead_id = None, None
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not isinstance(dead_id, str):
        raise InvalidCursorError(cursor=cursor[:60], reason="not a dead-letter position")
    return float(at), dead_id


async def _nothing() -> None:
    """What follows the commit of a delete: nothing."""


class RabbitDeadLetters:
    """The dead-letter box of one :class:`~taskiq_kit.rabbit.broker.RabbitBroker`.

    Args:
        broker: the broker (its records are written on replays).
        connection: its publishing connection (the box opens channels of its own).
        topology: its names and declarer.

    """

    def __init__(self, broker: KitBroker, connection: RabbitConnection, topology: Topology) -> None:
        self.broker = broker
        self.connection = connection
        self.topology = topology

    @property
    def _names(self) -> RabbitNames:
        return self.topology.names

    async def _channel(self) -> AbstractChannel:
        connection = await self.connection.get()
        channel: AbstractChannel = await connection.channel(publisher_confirms=False)
        return channel

    def _dead_letter(self, message: Taken) -> DeadLetter:
        headers = message.headers
        death = death_of(headers)
        names = body_names(message.body)
        reason = headers.get(REASON_HEADER)
        queue = headers.get(QUEUE_HEADER) or death.get("queue") or message.routing_key
        if reason is None:
            reason = self._rabbit_reason(death, queue)
        at: float | None = None
        dead_at = headers.get(DEAD_AT_HEADER)
        if isinstance(dead_at, int):
            at = dead_at / 1000
        elif isinstance(death.get("time"), datetime):
            at = death["time"].timestamp()
        # Not x-delivery-count: the dead-letter queue's own count, which listings increase.
        attempts = headers.get(DEAD_ATTEMPT_HEADER)
        task_name = headers.get(TASK_HEADER) or names.task_name
        return DeadLetter(
            id=message.id,
            task_id=names.task_id or message.message_id,
            task_name=text(task_name) if task_name and task_name != "?" else None,
            queue=text(queue) if queue else None,
            reason=text(reason),
            attempts=attempts if isinstance(attempts, int) else 0,
            dead_lettered_at=at,
            preview=preview(message.body),
        )

    def _rabbit_reason(self, death: dict[str, Any], queue: Any) -> str:
        if not death:
            return "no queue took it at the foot of the delay ladder (its queue was deleted?)"
        where = text(death.get("queue", "?"))
        if where.startswith(f"{self._names.exchange}.ladder."):
            return f"no queue {text(queue)!r} took it at the foot of the delay ladder"
        return f"RabbitMQ dead-lettered it: {text(death.get('reason', '?'))} in {where}"

    async def _open(self) -> tuple[AbstractChannel, aiormq.abc.AbstractChannel, int]:
        """A channel of its own, its underlying channel, and the dead letters ready now."""
        channel = await self._channel()
        underlay = await channel.get_underlay_channel()
        try:
            ok = await underlay.queue_declare(self._names.dead_letter, passive=True)
        except BaseException:
            await close(channel)
            raise
        return channel, underlay, int(ok.message_count or 0)

    async def list_dead_letters(self, *, limit: int, cursor: str | None) -> DeadLetterPage:
        """One page of the dead-letter queue, oldest first (by dead-letter time, then id).

        AMQP has no peek: the listing consumes up to :data:`LIST_SCAN_LIMIT` messages without
        acknowledging them, on a channel of its own, and closes it, which gives them all back.
        A quorum queue may hand returned messages out in another order for a moment, so the
        page is cut from the sorted scan and the cursor holds the last (time, id) shown, not an
        offset. Messages held by a replay in progress are not shown.
        """
        after = None if cursor is None else _position(cursor)
        channel, underlay, declared = await self._open()
        try:
            taking = Taking(underlay)
            await taking.start(self._names.dead_letter, prefetch=LIST_SCAN_LIMIT)
            letters = [
                self._dead_letter(message)
                async for message in taking.scan(declared, most=LIST_SCAN_LIMIT)
            ]
        finally:
            await close(channel)  # every message taken goes back
        total = max(declared, len(letters))
        letters.sort(key=_order)
        if after is not None:
            letters = [letter for letter in letters if _order(letter) > after]
        page = letters[:limit]
        next_cursor = None
        if len(letters) > limit:
            last = _order(page[-1])
            next_cursor = encode_cursor("rabbit", json.dumps([last[0], last[1]]))
        return DeadLetterPage(dead_letters=page, total=total, next_cursor=next_cursor)

    async def _target(self, message: Taken) -> str:
        """The queue a dead letter goes back to: its own if it exists, else the default one."""
        headers = message.headers
        queue = headers.get(QUEUE_HEADER) or death_of(headers).get("queue") or message.routing_key
        name = text(queue) if queue else ""
        names = self._names
        if name in names.queues:
            return name
        if name and not name.startswith(f"{names.exchange}."):
            connection = await self.connection.get()
            if await self.topology.queue_exists(connection, name):
                return name
        return names.default_queue

    async def _walk(
        self,
        ids: Sequence[str] | None,
        progress: ProgressCallback | None,
        settle: Callable[
            [aiormq.abc.AbstractChannel, list[Taken]], Awaitable[Callable[[], Awaitable[None]]]
        ],
    ) -> ReplayReport:
        """Take the dead letters wanted, ``settle`` each batch in a transaction and commit it."""
        wanted = None if ids is None else set(ids)
        found: set[str] = set()
        report = ReplayReport()
        channel, underlay, declared = await self._open()
        counter = Progress(progress, declared if ids is None else len(wanted or ()))
        started = time.time()
        try:
            await underlay.tx_select()
            taking = Taking(underlay)
            # No prefetch limit: the dead letters not wanted stay unacknowledged meanwhile.
            await taking.start(self._names.dead_letter, prefetch=0)
            batch: list[Taken] = []
            async for message in taking.scan(declared):
                if wanted is None and message.dead_at(started):
                    continue  # replayed and dead-lettered again meanwhile: not taken twice
                dead_id = message.id
                if wanted is not None and (dead_id not in wanted or dead_id in found):
                    continue  # left unacknowledged: back in the queue when the channel closes
                found.add(dead_id)
                batch.append(message)
                done = wanted is not None and len(found) == len(wanted)
                if len(batch) >= REPLAY_BATCH or done:
                    after = await settle(underlay, batch)
                    await underlay.tx_commit()
                    await after()
                    report.replayed += len(batch)
                    counter.add(len(batch))
                    batch = []
                if done:
                    break
            if batch:
                after = await settle(underlay, batch)
                await underlay.tx_commit()
                await after()
                report.replayed += len(batch)
                counter.add(len(batch))
        finally:
            await close(channel)
        if ids is not None:
            report.missing = [item for item in dict.fromkeys(ids) if item not in found]
            counter.add(len(report.missing))
        return report

    async def _send_back(
        self, channel: aiormq.abc.AbstractChannel, batch: list[Taken]
    ) -> Callable[[], Awaitable[None]]:
        replays = prepare_replays(self.broker, [message.body for message in batch])
        for message, replay in zip(batch, replays, strict=True):
            properties = Basic.Properties(
                headers={REPLAY_OF_HEADER: message.id},
                delivery_mode=PERSISTENT,
                message_id=body_names(replay.body).task_id or message.message_id,
                priority=message.priority,
            )
            await channel.basic_publish(
                replay.body,
                exchange=self._names.exchange,
                routing_key=await self._target(message),
                properties=properties,
            )
            await channel.basic_ack(message.tag)
        return functools.partial(record_replays, self.broker, replays)

    @staticmethod
    async def _drop(
        channel: aiormq.abc.AbstractChannel, batch: list[Taken]
    ) -> Callable[[], Awaitable[None]]:
        for message in batch:
            await channel.basic_ack(message.tag)
        return _nothing

    async def replay_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Send dead letters back to their queues, a transaction per batch."""
        return await self._walk(ids, progress, self._send_back)

    async def delete_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Delete dead letters (``None``: purge the dead-letter queue)."""
        if ids is not None:
            return await self._walk(ids, progress, self._drop)
        channel, underlay, _ = await self._open()
        try:
            ok = await underlay.queue_purge(self._names.dead_letter)
        finally:
            await close(channel)
        deleted = int(ok.message_count or 0)
        Progress(progress, deleted).add(deleted)
        return ReplayReport(replayed=deleted)
