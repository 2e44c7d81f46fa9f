"""Delayed delivery without a plugin: the binary TTL ladder; and the x-delayed-message probe.

The ladder has one queue per power of two: level ``k`` holds messages for exactly ``2**k``
seconds (a per-queue TTL, so every message in a queue expires in arrival order and none
blocks another), then dead-letters them to the exchange of level ``k - 1``. The queues are
quorum queues that dead-letter at-least-once, so no hop loses a message, a RabbitMQ restart
included (see :func:`taskiq_kit.rabbit.topology.ladder_queue_arguments`). The routing key
spells the whole-second delay in binary, most significant bit first, followed by the
destination queue::

    0.0. ... .1.0.1.orders      # 5 s, for the queue "orders"

Each level's topic exchange sends a message to its queue when its bit is ``1`` and straight
on to the next level down when it is ``0``; below level 0 a delivery exchange routes on the
trailing queue name. A message thus spends ``sum(2**k for set bits)`` seconds in the ladder.
The ladder carries whole seconds, a little less than the delay; the worker holds the rest
itself (see :mod:`taskiq_kit.rabbit.consumer`), so a task never runs early.
"""

from __future__ import annotations

import enum
import logging
import math

import aio_pika
import aiormq

logger = logging.getLogger("taskiq_kit.rabbit")

#: Levels in the default ladder: up to 2**29 - 1 s (about 17 years) ahead.
DEFAULT_LEVELS = 29
#: Name of the RabbitMQ plugin exchange type.
PLUGIN_EXCHANGE_TYPE = "x-delayed-message"


class DelayMode(str, enum.Enum):
    """How delayed tasks wait.

    ``AUTO`` and ``LADDER`` use the TTL ladder, which loses nothing across a RabbitMQ restart.
    ``PLUGIN`` uses the x-delayed-message plugin (start-up fails without it): millisecond
    precision, but at-most-once, as the plugin keeps delayed messages in node-local Mnesia
    tables and routes them without publisher confirms when they fall due.
    """

    AUTO = "auto"
    LADDER = "ladder"
    PLUGIN = "plugin"


#: Seconds of every delay left to the worker's hold rather than the ladder, so that the ladder's
#: hops (each a confirmed write into a quorum queue, milliseconds, more on a busy server) make a
#: message arrive a little less early instead of late.
LADDER_HEADROOM = 0.25


def ladder_seconds(delay: float) -> int:
    """Whole seconds a message of ``delay`` seconds spends in the ladder.

    At most ``delay - LADDER_HEADROOM``: the message reaches its task queue between
    :data:`LADDER_HEADROOM` and ``1 + LADDER_HEADROOM`` seconds early, and the worker holds it
    for the rest.
    """
    return max(0, math.floor(delay - LADDER_HEADROOM))


def ladder_route(seconds: int, queue: str, levels: int) -> tuple[int, str]:
    """Return the level a message enters at and its routing key.

    Args:
        seconds: whole seconds to wait, ``1 <= seconds < 2**levels``.
        queue: the destination task queue.
        levels: number of levels in the ladder.

    Raises:
        ValueError: when ``seconds`` does not fit the ladder.

    """
    if not 1 <= seconds < 2**levels:
        raise ValueError(f"{seconds} s does not fit a {levels}-level ladder")
    bits = format(seconds, f"0{levels}b")
    return seconds.bit_length() - 1, ".".join(bits) + "." + queue


def level_binding(level: int, levels: int, bit: str) -> str:
    """Topic pattern matching keys whose bit for ``level`` is ``bit``."""
    return "*." * (levels - 1 - level) + bit + ".#"


def delivery_binding(queue: str, levels: int) -> str:
    """Topic pattern matching ladder keys for ``queue`` (exactly, not as a suffix)."""
    return "*." * levels + queue


async def probe_plugin(url: str, exchange: str, *, timeout: float) -> bool:
    """Whether the x-delayed-message plugin is enabled, by declaring ``exchange`` with its type.

    The declaration uses a throwaway connection: RabbitMQ closes the whole connection that asks
    for an unknown exchange type (error 503).
    """
    quiet = _ProbeNoiseFilter()
    aiormq_logger = logging.getLogger("aiormq.connection")
    aiormq_logger.addFilter(quiet)
    connection = await aio_pika.connect(url, timeout=timeout)
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.declare_exchange(
            exchange,
            type=PLUGIN_EXCHANGE_TYPE,
            durable=True,
            arguments={"x-delayed-type": "direct"},
        )
    except aiormq.exceptions.AMQPError as exc:
        logger.info("The x-delayed-message plugin is not available (%s).", exc)
        return False
    finally:
        await connection.close()
        aiormq_logger.removeFilter(quiet)
    return True


class _ProbeNoiseFilter(logging.Filter):
    """Hides aiormq's error logs about the probe connection that RabbitMQ closes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return PLUGIN_EXCHANGE_TYPE not in text and "reader exited abnormally" not in text
