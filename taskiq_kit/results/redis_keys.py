"""Every Redis key and channel the result backend uses, in one place.

All keys of one task share the hash tag ``{<task_id>}``, so they live in one Redis Cluster slot
and can be written together in one script or transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "taskiq-kit"


@dataclass(frozen=True)
class ResultKeys:
    """Key names under ``prefix``.

    Args:
        prefix: first part of every key; must not contain ``{`` or ``}`` (hash-tag syntax),
            nor NUL (the record script's separator).

    Raises:
        ValueError: for an empty prefix or one with braces or NUL.

    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(
                f"invalid key prefix {self.prefix!r}: use a non-empty name without braces"
            )
        if "\0" in self.prefix:
            raise ValueError(f"invalid key prefix {self.prefix!r}: use a name without NUL")

    def _key(self, task_id: str, kind: str) -> str:
        return f"{self.prefix}:{{{task_id}}}:{kind}"

    def result(self, task_id: str) -> str:
        """The encoded result (a string)."""
        return self._key(task_id, "result")

    def status(self, task_id: str) -> str:
        """The status record (a hash of JSON-encoded fields)."""
        return self._key(task_id, "status")

    def progress(self, task_id: str) -> str:
        """The latest progress report (a JSON string)."""
        return self._key(task_id, "progress")

    def events(self, task_id: str) -> str:
        """Pub/sub channel announcing progress writes and the final status."""
        return self._key(task_id, "events")

    def long_leases(self) -> str:
        """Leases of kept long-task messages (a sorted set: task id -> expiry, unix seconds).

        The three long-task keys share the hash tag ``{long}`` (one Redis Cluster slot).
        """
        return f"{self.prefix}:{{long}}:leases"

    def long_owners(self) -> str:
        """Who holds each long-task lease (a hash: task id -> worker)."""
        return f"{self.prefix}:{{long}}:owners"

    def long_kept(self) -> str:
        """Kept long-task messages (a hash: task id -> JSON with the base64 body)."""
        return f"{self.prefix}:{{long}}:kept"

    def index(self) -> str:
        """The first part of every key of the task index (one hash tag: one cluster slot)."""
        return f"{self.prefix}:{{index}}:"

    def index_anchor(self) -> str:
        """The key an index script declares (``KEYS[1]``) so a cluster runs it on the index's node.

        The scripts build the other index keys from :meth:`index` inside Lua; they share its
        hash tag, hence the anchor's slot.
        """
        return f"{self.index()}all"

    def workers(self) -> str:
        """The worker registry: a hash, worker id -> its last heartbeat (JSON)."""
        return f"{self.prefix}:{{workers}}:info"

    def worker_deadlines(self) -> str:
        """The worker registry's deadlines: worker id -> when it counts as dead (unix ms)."""
        return f"{self.prefix}:{{workers}}:deadlines"
