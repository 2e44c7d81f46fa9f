"""Liveness of the consumers of a queue: heartbeats, and the recovery of dead consumers' messages.

Every consumer writes its *deadline* (Redis server time + ``dead_after``) into the queue's
``heartbeats`` sorted set every ``heartbeat_interval``, from a thread of its own, so a task that
blocks the worker's event loop does not stop the beats of a live process. A consumer whose
deadline has passed is dead: any live consumer claims its pending entries (``XCLAIM``, one more
delivery each) and, once it holds nothing, deletes it from the group and the sorted set.

Deadlines are compared with Redis's own clock, so worker clocks may disagree. After a silence of
Redis (stopped, stalled, or no worker at all for a while) nobody is declared dead until every live
consumer has had ``dead_after`` to beat again. Consumers without a heartbeat (older workers) are
left to the ``idle_timeout`` reclaim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from taskiq_kit.exceptions import RedisSettingError
from taskiq_kit.redis import scripts
from taskiq_kit.redis.connect import close_client

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.redis.keys import RedisKeys

logger = logging.getLogger("taskiq_kit.redis.heartbeat")

#: Most seconds :meth:`Liveness.stop` waits for the heartbeat thread to end.
_JOIN_TIMEOUT = 5.0


def check_heartbeat(interval: float, dead_after: float) -> None:
    """Check that ``heartbeat_interval`` and ``dead_after`` can work together.

    Raises:
        RedisSettingError: for an interval below 10 ms (or not a finite number), or a
            ``dead_after`` below twice the interval.

    """
    if not (math.isfinite(interval) and interval >= 0.01):
        raise RedisSettingError(
            setting="heartbeat_interval",
            value=interval,
            reason="must be a number of seconds >= 0.01",
        )
    if not (math.isfinite(dead_after) and dead_after >= 2 * interval):
        raise RedisSettingError(
            setting="dead_after",
            value=dead_after,
            reason=(
                f"must be at least twice heartbeat_interval ({interval} s), so that one late "
                "heartbeat does not make a live worker look dead; raise dead_after or lower "
                "heartbeat_interval"
            ),
        )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Liveness:
    """One consumer's heartbeat, and its sweep of the consumers that stopped beating.

    Args:
        client: the consumer's Redis client (binary responses), for the sweeps.
        connect: makes the heartbeat thread's own client; called in that thread.
        keys: key names of the queue.
        name: the consumer's name in the group.
        interval: seconds between two heartbeats.
        dead_after: seconds without a heartbeat after which a consumer is dead.

    """

    def __init__(
        self,
        client: RedisClient,
        connect: Callable[[], RedisClient],
        keys: RedisKeys,
        *,
        name: str,
        interval: float,
        dead_after: float,
    ) -> None:
        self.keys = keys
        self.name = name
        self.interval = interval
        self.dead_after = dead_after
        #: Seconds between two sweeps for dead consumers.
        self.sweep_every = interval / 2
        self._connect = connect
        self._claim_dead = client.register_script(scripts.CLAIM_DEAD)
        self._declare = client.register_script(scripts.HEARTBEAT)
        # Longer than any gap between two beats of a live consumer, shorter than the silence
        # that could make a live one miss its deadline (dead_after >= 2 * interval).
        self._silence_ms = _ms(dead_after - interval)
        self._next_sweep = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start beating, in a daemon thread with its own event loop and connection."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=asyncio.run,
                args=(self._beat_until_stopped(),),
                name=f"taskiq-kit-heartbeat-{self.name}",
                daemon=True,
            )
            self._thread.start()

    async def stop(self) -> None:
        """Stop beating and declare this consumer dead, so live ones take what it still holds."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        await asyncio.to_thread(thread.join, _JOIN_TIMEOUT)
        with contextlib.suppress(RedisError, OSError):
            await self._declare(
                keys=[self.keys.heartbeats, self.keys.heartbeat_clock],
                args=[self.name, -1, self._silence_ms],
            )

    def seconds_to_sweep(self, now: float) -> float:
        """Seconds from ``now`` (monotonic) until the next sweep is due (0: due now)."""
        return max(0.0, self._next_sweep - now)

    async def sweep(self, count: int) -> list[tuple[str, bytes | None, int]]:
        """Claim up to ``count`` messages of dead consumers, if a sweep is due.

        Returns:
            The claimed messages as (entry id, body, delivery count); the body is ``None`` for an
            entry without a ``data`` field.

        """
        now = time.monotonic()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + self.sweep_every
        reply: list[Any] = await self._claim_dead(
            keys=[self.keys.ready, self.keys.heartbeats, self.keys.heartbeat_clock],
            args=[self.keys.group, self.name, count, self._silence_ms, _ms(self.dead_after)],
        )
        claimed = [
            (_text(entry[0]), None if entry[1] is None else bytes(entry[1]), int(entry[2]))
            for entry in reply[0]
        ]
        gone = [_text(name) for name in reply[1]]
        if claimed:
            logger.info("Took %d message(s) of dead consumer(s) over.", len(claimed))
        if gone:
            logger.info("Removed dead consumer(s) %s from the group.", ", ".join(gone))
        if len(claimed) >= count:
            self._next_sweep = 0.0  # more may be waiting
        return claimed

    async def _beat_until_stopped(self) -> None:
        """The heartbeat thread: beat every ``interval`` until :meth:`stop`."""
        try:
            client = self._connect()
        except Exception:
            logger.exception("Cannot create the heartbeat client; this worker will look dead.")
            return
        script = client.register_script(scripts.HEARTBEAT)
        failing = False
        try:
            while not self._stopping.is_set():
                try:
                    await script(
                        keys=[self.keys.heartbeats, self.keys.heartbeat_clock],
                        args=[self.name, _ms(self.dead_after), self._silence_ms],
                    )
                except Exception as exc:  # noqa: BLE001 - the thread must keep beating
                    if not failing:
                        logger.warning(
                            "Heartbeat of consumer %s failed (%s); live workers take its messages "
                            "if it stays silent for %.1f s.",
                            self.name,
                            type(exc).__name__,
                            self.dead_after,
                        )
                    failing = True
                else:
                    if failing:
                        logger.info("Heartbeat of consumer %s is back.", self.name)
                    failing = False
                # This loop runs nothing else: blocking it while waiting is harmless.
                self._stopping.wait(self.interval)
        finally:
            with contextlib.suppress(Exception):
                await close_client(client)
