"""Every Redis key the broker uses, in one place.

All keys of one queue share the hash tag ``{<queue>}``, so they live in one Redis Cluster slot
and the Lua scripts (which touch several of them at once) run on a cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskiq_kit.exceptions import RedisSettingError

DEFAULT_PREFIX = "taskiq-kit"
DEFAULT_QUEUE = "taskiq"


def _check(setting: str, name: str) -> str:
    if not name:
        raise RedisSettingError(setting=setting, value=name, reason="must not be empty")
    if any(char in name for char in "{}") or any(char.isspace() for char in name):
        raise RedisSettingError(
            setting=setting, value=name, reason="must not contain braces or whitespace"
        )
    return name


def abort_channel(scope: str, *, db: int) -> str:
    """Pub/sub channel of the abort requests of one app (``scope``) on database ``db``.

    Redis pub/sub ignores the database number, so it is part of the name: apps on different
    databases of one server (or with different queues) never hear each other's aborts.
    """
    return f"taskiq-kit:abort:{scope}:db{db}"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Names of the keys (and the pub/sub channel) of one queue.

    Attributes:
        queue: the queue name; it becomes the hash tag.
        prefix: the first part of every key.

    """

    queue: str = DEFAULT_QUEUE
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        _check("queue_name", self.queue)
        _check("key_prefix", self.prefix)

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{{{self.queue}}}:{suffix}"

    @property
    def ready(self) -> str:
        """Stream of messages ready to run, consumed through :attr:`group`."""
        return self._key("ready")

    @property
    def group(self) -> str:
        """Consumer group of the workers on :attr:`ready` (a name, not a key)."""
        return f"{self.prefix}:workers"

    @property
    def delayed(self) -> str:
        """Sorted set of delayed message ids scored by due time (unix seconds)."""
        return self._key("delayed")

    @property
    def payloads(self) -> str:
        """Hash of delayed message id -> message body."""
        return self._key("delayed:payloads")

    @property
    def dead(self) -> str:
        """Stream of dead-lettered messages (fields ``data``, ``reason``, ``attempt``, ``id``)."""
        return self._key("dead")

    @property
    def heartbeats(self) -> str:
        """Sorted set of consumer name -> deadline (Redis server time, ms) of its next heartbeat.

        A consumer whose deadline has passed is dead: its messages go to a live consumer.
        """
        return self._key("heartbeats")

    @property
    def heartbeat_clock(self) -> str:
        """Hash of two instants in Redis server time (ms), kept by the heartbeat scripts.

        ``seen``: when one last ran; ``resumed``: when Redis came back from a silence long enough
        for live consumers to miss their deadlines (see :mod:`taskiq_kit.redis.heartbeat`).
        """
        return self._key("heartbeats:clock")

    @property
    def wakeup(self) -> str:
        """Pub/sub channel announcing a new earliest due time to sleeping promoters."""
        return self._key("delayed:wakeup")

    def all(self) -> tuple[str, ...]:
        """Every key of the queue (not the channel): what a cleanup deletes."""
        return (
            self.ready,
            self.delayed,
            self.payloads,
            self.dead,
            self.heartbeats,
            self.heartbeat_clock,
        )
