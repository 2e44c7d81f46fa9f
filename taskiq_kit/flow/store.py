"""What flow control needs from a store, and the in-process store of ``memory://`` brokers.

Every operation is atomic on the store's side and reads the store's own clock (Redis ``TIME``,
PostgreSQL ``clock_timestamp()``), so workers whose clocks differ still share one limit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol


class FlowStore(Protocol):
    """Rate reservations, slot leases and claims, shared by every process of an app."""

    async def reserve_rate(self, key: str, interval: float, tolerance: float) -> float:
        """Reserve the next run of ``key`` under a GCRA limit; return seconds until it may start.

        The reservation is taken whatever the wait: the caller runs the task at that instant
        without asking again. ``interval`` is the spacing of runs, ``tolerance`` how far ahead
        of it a burst may run (``interval * (burst - 1)``).
        """

    async def acquire_slot(self, key: str, holder: str, limit: int, lease: float) -> bool:
        """Take (or keep) one of ``limit`` slots of ``key`` for ``holder``, leased ``lease`` s."""

    async def renew_slots(self, held: Sequence[tuple[str, str, float]]) -> None:
        """Extend the leases of ``(key, holder, lease)`` slots still held."""

    async def release_slot(self, key: str, holder: str) -> None:
        """Give the slot of ``holder`` back."""

    async def claim(self, key: str, holder: str, ttl: float) -> str | None:
        """Claim ``key`` for ``holder`` for ``ttl`` s; return the current holder if it is taken."""

    async def replace_claim(self, key: str, old: str, new: str, ttl: float) -> bool:
        """Hand the claim of ``key`` from ``old`` to ``new``; false when ``old`` lost it."""

    async def set_latest(self, key: str, holder: str, ttl: float) -> str | None:
        """Make ``holder`` the latest of ``key`` for ``ttl`` s; return the one it replaces."""

    async def latest(self, key: str) -> str | None:
        """The latest holder of ``key``, if its time has not run out."""

    async def replace_latest(self, key: str, old: str, new: str, ttl: float) -> bool:
        """Make ``new`` the latest of ``key`` for ``ttl`` s if ``old`` still is; false if not."""


class MemoryFlowStore:
    """The flow store of one process (``memory://`` brokers, whose workers are that process)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._claims: dict[str, tuple[str, float]] = {}

    async def reserve_rate(self, key: str, interval: float, tolerance: float) -> float:
        """See :meth:`FlowStore.reserve_rate`."""
        now = time.time()
        tat = max(self._tat.get(key, now), now) + interval
        self._tat[key] = tat
        return max(0.0, tat - interval - tolerance - now)

    async def acquire_slot(self, key: str, holder: str, limit: int, lease: float) -> bool:
        """See :meth:`FlowStore.acquire_slot`."""
        now = time.time()
        holders = self._slots.setdefault(key, {})
        for name in [name for name, until in holders.items() if until <= now]:
            del holders[name]
        if holder in holders or len(holders) < limit:
            holders[holder] = now + lease
            return True
        return False

    async def renew_slots(self, held: Sequence[tuple[str, str, float]]) -> None:
        """See :meth:`FlowStore.renew_slots`."""
        now = time.time()
        for key, holder, lease in held:
            holders = self._slots.get(key)
            if holders is not None and holder in holders:
                holders[holder] = now + lease

    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`FlowStore.release_slot`."""
        holders = self._slots.get(key)
        if holders is not None:
            holders.pop(holder, None)
            if not holders:
                del self._slots[key]

    def _live(self, key: str) -> str | None:
        entry = self._claims.get(key)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    async def claim(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`FlowStore.claim`."""
        current = self._live(key)
        if current is not None:
            return current
        self._claims[key] = (holder, time.time() + ttl)
        return None

    async def replace_claim(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`FlowStore.replace_claim`."""
        if self._live(key) != old:
            return False
        self._claims[key] = (new, time.time() + ttl)
        return True

    async def set_latest(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`FlowStore.set_latest`."""
        previous = self._live(key)
        self._claims[key] = (holder, time.time() + ttl)
        return previous

    async def replace_latest(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`FlowStore.replace_latest` (latest holders are claims here)."""
        return await self.replace_claim(key, old, new, ttl)

    async def latest(self, key: str) -> str | None:
        """See :meth:`FlowStore.latest`."""
        return self._live(key)
