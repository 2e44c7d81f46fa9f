"""One confirmed publish on an aiormq channel, without aiormq's per-publish machinery.

aiormq's ``Channel.basic_publish`` enters two async context managers, an ``asyncio.timeout`` and
the channel lock on every call: about 80 µs of CPU per kick on the benchmark machine, a sixth of
kicking and running a no-op task end to end (``bench/rabbit_bench.py``). This publish does the
same bookkeeping in one step: RabbitMQ numbers the publishes of a channel in the order their frames
reach it, so the frames go into the connection's write queue and the publish takes the channel's
next delivery tag right then, with no ``await`` in between; the confirm (or the return of an
unroutable message, matched by message id) then settles the future aiormq keeps for that tag, as
for its own publishes. The frames are built by pamqp, as aiormq builds them.

The publisher channel is used for nothing else, so no ``basic_publish`` of aiormq's own can
number its frames in between. With an aiormq this code was not checked against, or on a channel
without confirms, every publish goes through ``basic_publish``.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from importlib.metadata import version

import aiormq
from aiormq.abc import ChannelFrame, ConfirmationFrameType
from aiormq.exceptions import ChannelInvalidStateError
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

#: aiormq releases whose private publish bookkeeping this module was checked against
#: (``delivery_tag``, ``confirmations``, ``message_id_delivery_tag``, ``write_queue``): from the
#: first to the last excluded. ``tests/rabbit/test_confirmed.py`` runs both paths against RabbitMQ;
#: widen the bound only after it passes on the new release.
TESTED_AIORMQ = ((7, 0), (7, 3))


def fast_path_supported(aiormq_version: str, python: tuple[int, int]) -> bool:
    """Whether this module's publish may be used with ``aiormq_version`` on ``python``.

    Outside :data:`TESTED_AIORMQ` (and before Python 3.11, whose ``asyncio.timeout_at`` and
    ``Task.cancelling`` it uses) every publish goes through aiormq's public ``basic_publish``.
    """
    try:
        release = tuple(int(part) for part in aiormq_version.split(".")[:2])
    except ValueError:
        return False
    low, high = TESTED_AIORMQ
    return python >= (3, 11) and low <= release < high


#: Whether the installed aiormq and Python take the fast path.
SUPPORTED = fast_path_supported(version("aiormq"), sys.version_info[:2]) and hasattr(
    ChannelFrame, "marshall"
)


async def _put_by(
    queue: asyncio.Queue[ChannelFrame], frames: ChannelFrame, deadline: float
) -> None:
    """Wait for room in ``queue`` until ``deadline``; return as the frames enter it."""
    if sys.version_info >= (3, 11):
        # ``put`` returns right after the frames enter the queue, with no suspension between.
        async with asyncio.timeout_at(deadline):
            await queue.put(frames)
    else:  # pragma: no cover - not SUPPORTED before 3.11
        raise NotImplementedError


def _cancel_count() -> int:
    """How many cancellations of the current task are pending (``Task.cancelling``)."""
    task = asyncio.current_task()
    if sys.version_info >= (3, 11):
        return 0 if task is None else task.cancelling()
    return 0  # pragma: no cover - not SUPPORTED before 3.11


def body_frames(body: bytes, max_size: int) -> list[ContentBody]:
    """``body`` cut into frames of at most ``max_size`` bytes (none for an empty body).

    A size of 0 or less (a broker with no frame size limit) sends the body as one frame.
    """
    if not body:
        return []
    size = max_size if max_size > 0 else len(body)
    return [ContentBody(body[at : at + size]) for at in range(0, len(body), size)]


async def publish_confirmed(
    channel: aiormq.Channel,
    body: bytes,
    *,
    exchange: str,
    routing_key: str,
    properties: Basic.Properties,
    mandatory: bool,
    timeout: float,
) -> ConfirmationFrameType | None:
    """Publish ``body`` and wait for RabbitMQ's confirm, at most ``timeout`` seconds.

    Raises what ``basic_publish`` raises: ``aiormq.exceptions.PublishError`` for a returned
    (unroutable) message, ``DeliveryError`` for a nack, ``TimeoutError`` (nothing is sent when
    ``timeout`` is not positive), and ``ChannelInvalidStateError`` or the connection's error when
    the channel closes first; a publish that aiormq abandons with a cancellation the caller did
    not ask for (its connection torn down) raises ``ConnectionError`` instead. A message without
    a message id gets a random one, as with ``basic_publish``: returns are matched by it.
    """
    if not SUPPORTED or not channel.publisher_confirms:
        return await channel.basic_publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            properties=properties,
            mandatory=mandatory,
            timeout=timeout,
            wait=False,
        )
    if timeout <= 0:
        raise TimeoutError("no time left to publish")
    if channel.is_closed:
        raise ChannelInvalidStateError(f"{channel!r} closed")
    if not properties.message_id:  # pamqp does not send an empty one: a return could not match
        properties.message_id = uuid.uuid4().hex
    message_id = properties.message_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    frames = ChannelFrame.marshall(
        channel_number=channel.number,
        frames=[
            Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            ContentHeader(properties=properties, body_size=len(body)),
            *body_frames(body, channel.max_content_size),
        ],
    )
    queue = channel.write_queue
    if queue.full():
        # The writer is behind: wait for room (the rare case, so a timeout context is fine).
        await _put_by(queue, frames, deadline)
        if channel.is_closed:
            raise ChannelInvalidStateError(f"{channel!r} closed")
    else:
        queue.put_nowait(frames)
    # Numbered in the step that queued the frames: the tag RabbitMQ will confirm.
    channel.delivery_tag += 1
    tag = channel.delivery_tag
    confirmation = channel.create_future()
    channel.confirmations[tag] = confirmation
    returns = channel.message_id_delivery_tag
    returns[message_id] = tag

    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        confirmation.cancel()  # aiormq ignores a late confirm of a cancelled publish

    cancels_before = _cancel_count()
    timer = loop.call_at(deadline, expire)
    try:
        result: ConfirmationFrameType | None = await confirmation
    except asyncio.CancelledError:
        if _cancel_count() > cancels_before:
            raise  # the caller's own cancellation
        if timed_out:
            raise TimeoutError(f"no confirm from RabbitMQ within {timeout:g} s") from None
        raise ConnectionError("the channel closed before RabbitMQ confirmed the publish") from None
    finally:
        timer.cancel()
        if returns.get(message_id) == tag:
            del returns[message_id]
    return result
