"""Writes that return only once replicas have them too: ``WAIT`` after the write, on its connection.

Redis replicates asynchronously: a write the master acknowledged is lost if the master dies before
a replica received it, and Sentinel then promotes that replica. ``WAIT n timeout`` blocks until
``n`` replicas acknowledged every earlier write *of the same connection*, so the write and the
``WAIT`` go in one pipeline (one connection, one round trip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskiq_kit.exceptions import BrokerNotAvailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline
    from redis.commands.core import AsyncScript


class ReplicaAcks:
    """How many replicas must acknowledge a kick before it returns.

    Args:
        replicas: replicas that must have the write (0: return once the master has it).
        timeout: seconds to wait for them; a kick not acknowledged in time raises.
        target: what to name in the error (a redacted URL).

    """

    def __init__(self, replicas: int, timeout: float, target: str) -> None:
        self.replicas = replicas
        self.timeout = timeout
        self.target = target

    def add_wait(self, pipe: Pipeline) -> None:
        """Queue the ``WAIT`` as the last command of ``pipe``."""
        pipe.execute_command("WAIT", self.replicas, max(1, int(self.timeout * 1000)))

    def check(self, acked: object) -> None:
        """Raise unless ``acked`` (the reply of ``WAIT``) reaches :attr:`replicas`.

        Raises:
            BrokerNotAvailableError: when fewer replicas acknowledged in time; the write may
                still be on the master (a retry can run the task twice, never zero times).

        """
        count = int(acked) if isinstance(acked, (int, str, bytes)) else 0
        if count < self.replicas:
            reason = (
                f"only {count} of {self.replicas} replica(s) acknowledged the kick "
                f"(WAIT); it may be lost if the master fails now"
            )
            raise BrokerNotAvailableError(target=self.target, timeout=self.timeout, reason=reason)

    async def run_script(
        self, client: Redis, script: AsyncScript, keys: list[Any], args: list[Any]
    ) -> Any:
        """Run ``script`` then ``WAIT`` on one connection; return the script's reply."""
        async with client.pipeline(transaction=False) as pipe:
            await script(keys=keys, args=args, client=pipe)
            self.add_wait(pipe)
            replies = await pipe.execute()
        self.check(replies[-1])
        return replies[0]
