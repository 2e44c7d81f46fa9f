"""Every Redis key the scheduler uses, in one place.

All keys of one scheduler share the hash tag ``{<name>}``: they live in one Redis Cluster slot,
so the Lua scripts that touch several of them at once run on a cluster too. Replicas that share
a name (and a Redis server) form one group: one of them fires, the others stand by.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskiq_kit.exceptions import TaskiqKitError

DEFAULT_PREFIX = "taskiq-kit:scheduler"
DEFAULT_NAME = "default"


class InvalidSchedulerNameError(TaskiqKitError, ValueError):
    """A scheduler name or key prefix cannot be used in a Redis key."""

    __template__ = "invalid scheduler name or prefix {name!r}: {reason}"
    name: str
    reason: str


def _check(name: str) -> str:
    if not name:
        raise InvalidSchedulerNameError(name=name, reason="must not be empty")
    if any(char in name for char in "{}") or any(char.isspace() for char in name):
        raise InvalidSchedulerNameError(name=name, reason="must not contain braces or whitespace")
    return name


@dataclass(frozen=True, slots=True)
class SchedulerKeys:
    """Names of the keys of one scheduler group.

    Attributes:
        name: the scheduler group name; it becomes the hash tag.
        prefix: the first part of every key.

    """

    name: str = DEFAULT_NAME
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        _check(self.name)
        _check(self.prefix)

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{{{self.name}}}:{suffix}"

    @property
    def lease(self) -> str:
        """String holding the leader's token; expires unless the leader renews it."""
        return self._key("lease")

    @property
    def fired(self) -> str:
        """Hash: schedule id -> unix time of the last firing handled (sent or skipped)."""
        return self._key("fired")

    @property
    def inflight(self) -> str:
        """Hash: schedule id -> unix time of a firing claimed but not yet confirmed as sent."""
        return self._key("inflight")

    @property
    def schedules(self) -> str:
        """Hash: schedule id -> JSON of a dynamic schedule (see ``RedisScheduleStore``)."""
        return self._key("schedules")

    @property
    def version(self) -> str:
        """Counter bumped on every change of :attr:`schedules` or :attr:`switches`."""
        return self._key("version")

    @property
    def switches(self) -> str:
        """Hash: id of a static schedule -> JSON of the operator's pause or resume of it.

        Static schedules (code, configuration, task labels) cannot be edited in Redis, so a pause
        is kept beside them; dynamic schedules keep theirs in their own ``enabled`` field.
        """
        return self._key("switches")

    def all(self) -> tuple[str, ...]:
        """Every key of the group (for cleanup)."""
        return (
            self.lease,
            self.fired,
            self.inflight,
            self.schedules,
            self.version,
            self.switches,
        )
