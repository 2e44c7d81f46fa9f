"""Flow control in PostgreSQL: one statement per operation, on the result store's pool.

Three small tables beside the result table (``<table>_flow_rate``, ``<table>_flow_slots``,
``<table>_flow_claims``), created on first use. Times are the server's ``clock_timestamp()``.
Slots are numbered rows ``(key, slot)`` for ``slot`` in ``1..limit``: two workers taking the
same free slot collide on the primary key, and the loser is told "no slot" (it tries again
later), so no lock is held across statements and the limit is never exceeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskiq_kit.results.reach import reaching

if TYPE_CHECKING:
    from taskiq_kit.results.postgres import PostgresResultBackend

_NOW = "extract(epoch FROM clock_timestamp())::float8"


def statements(table: str) -> dict[str, str]:
    """The SQL of the flow tables next to the result table ``table`` (checked by the backend)."""
    sql = {
        "schema": (
            "CREATE TABLE IF NOT EXISTS %RATE% (key text PRIMARY KEY, tat float8 NOT NULL);"
            "CREATE TABLE IF NOT EXISTS %SLOTS% (key text, slot int, holder text NOT NULL, "
            "expires_at float8 NOT NULL, PRIMARY KEY (key, slot));"
            "CREATE TABLE IF NOT EXISTS %CLAIMS% (key text PRIMARY KEY, holder text NOT NULL, "
            "expires_at float8 NOT NULL)"
        ),
        # GCRA with reservation: $1 key, $2 interval, $3 tolerance (seconds). The new
        # theoretical arrival time is max(tat, now) + interval; the wait is what it leaves.
        "reserve_rate": (
            "WITH c AS (SELECT %NOW% AS now) "
            "INSERT INTO %RATE% AS r (key, tat) SELECT $1, c.now + $2 FROM c "
            "ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, (SELECT now FROM c)) + $2 "
            "RETURNING GREATEST(0, r.tat - $2 - $3 - (SELECT now FROM c))"
        ),
        # $1 key, $2 holder, $3 limit, $4 lease: keep the holder's slot, or take the lowest
        # free (or expired) one.
        "acquire_slot": (
            "WITH c AS (SELECT %NOW% AS now), "
            "mine AS (UPDATE %SLOTS% SET expires_at = (SELECT now FROM c) + $4 "
            "WHERE key = $1 AND holder = $2 AND expires_at > (SELECT now FROM c) RETURNING slot), "
            "taken AS (INSERT INTO %SLOTS% AS s (key, slot, holder, expires_at) "
            "SELECT $1, n, $2, c.now + $4 FROM c, generate_series(1, $3::int) AS n "
            "WHERE NOT EXISTS (SELECT 1 FROM mine) AND NOT EXISTS (SELECT 1 FROM "
            "%SLOTS% o WHERE o.key = $1 AND o.slot = n AND o.expires_at > c.now) "
            "ORDER BY n LIMIT 1 "
            "ON CONFLICT (key, slot) DO UPDATE SET holder = EXCLUDED.holder, "
            "expires_at = EXCLUDED.expires_at WHERE s.expires_at <= EXCLUDED.expires_at - $4 "
            "RETURNING slot) "
            "SELECT slot FROM mine UNION ALL SELECT slot FROM taken"
        ),
        "renew_slots": (
            "UPDATE %SLOTS% s SET expires_at = %NOW% + h.lease "
            "FROM unnest($1::text[], $2::text[], $3::float8[]) AS h(key, holder, lease) "
            "WHERE s.key = h.key AND s.holder = h.holder AND s.expires_at > %NOW%"
        ),
        "free": "SELECT count(*) < $2 FROM %SLOTS% WHERE key = $1 AND expires_at > %NOW%",
        "release_slot": "DELETE FROM %SLOTS% WHERE key = $1 AND holder = $2",
        # $1 key, $2 holder, $3 ttl: returns the holder when claimed (a row), nothing when taken.
        "claim": (
            "WITH c AS (SELECT %NOW% AS now) "
            "INSERT INTO %CLAIMS% AS k (key, holder, expires_at) SELECT $1, $2, c.now + $3 "
            "FROM c ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, "
            "expires_at = EXCLUDED.expires_at WHERE k.expires_at <= (SELECT now FROM c) "
            "RETURNING holder"
        ),
        "holder": "SELECT holder FROM %CLAIMS% WHERE key = $1 AND expires_at > %NOW%",
        "replace_claim": (
            "UPDATE %CLAIMS% SET holder = $3, expires_at = %NOW% + $4 "
            "WHERE key = $1 AND holder = $2 AND expires_at > %NOW% RETURNING 1"
        ),
        # $1 key, $2 holder, $3 ttl: the holder it replaced when still live (a row: the key
        # exists; NULL in it: it had run out). The sub-select locks the row first, so it
        # reads the value this update replaces, even under concurrent updates.
        "swap_latest": (
            "WITH c AS (SELECT %NOW% AS now) "
            "UPDATE %CLAIMS% k SET holder = $2, expires_at = (SELECT now FROM c) + $3 "
            "FROM (SELECT key, holder, expires_at FROM %CLAIMS% WHERE key = $1 FOR UPDATE) old "
            "WHERE k.key = old.key "
            "RETURNING CASE WHEN old.expires_at > (SELECT now FROM c) THEN old.holder END"
        ),
        "insert_latest": (
            "INSERT INTO %CLAIMS% (key, holder, expires_at) VALUES ($1, $2, %NOW% + $3) "
            "ON CONFLICT (key) DO NOTHING RETURNING 1"
        ),
        # Rows that mean nothing any more (a past arrival time is no limit), bounded per call.
        "purge": (
            "WITH r AS (DELETE FROM %RATE% WHERE ctid = ANY(ARRAY(SELECT ctid FROM %RATE% "
            "WHERE tat < %NOW% LIMIT 1000))), "
            "s AS (DELETE FROM %SLOTS% WHERE ctid = ANY(ARRAY(SELECT ctid FROM %SLOTS% "
            "WHERE expires_at < %NOW% LIMIT 1000))) "
            "DELETE FROM %CLAIMS% WHERE ctid = ANY(ARRAY(SELECT ctid FROM %CLAIMS% "
            "WHERE expires_at < %NOW% LIMIT 1000))"
        ),
    }
    names = {
        "%RATE%": f"{table}_flow_rate",
        "%SLOTS%": f"{table}_flow_slots",
        "%CLAIMS%": f"{table}_flow_claims",
        "%NOW%": _NOW,
    }
    rendered = {}
    for name, template in sql.items():
        text = template
        for placeholder, value in names.items():
            text = text.replace(placeholder, value)
        rendered[name] = text
    return rendered


class PostgresFlowStore:
    """Flow control in the database of a :class:`~taskiq_kit.results.postgres.PostgresResultBackend`.

    Args:
        backend: the result store whose pool and table name it uses.

    """

    #: Tries of a slot whose free number another worker took in the same instant.
    _SLOT_TRIES = 3
    #: Calls between two purges of the rows that ran out.
    PURGE_EVERY = 1000

    def __init__(self, backend: PostgresResultBackend[Any]) -> None:
        self.backend = backend
        self.url = backend.url
        self.connect_timeout = backend.connect_timeout
        self.unreachable_errors = backend.unreachable_errors
        self.sql = statements(backend.table)
        self._ready = False
        self._lock = asyncio.Lock()
        self._calls = 0

    @property
    def target(self) -> str:
        """The store, safe to show."""
        return self.backend.target

    async def _tables(self) -> None:
        if self._ready:
            self._calls += 1
            if self._calls % self.PURGE_EVERY == 0:
                await self.purge()
            return
        async with self._lock:
            if self._ready:
                return
            async with self.backend.pool.acquire() as conn, conn.transaction():
                # Concurrent CREATE TABLE IF NOT EXISTS can still collide: serialise them.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", self.backend.table + "_flow"
                )
                await conn.execute(self.sql["schema"])
            self._ready = True

    async def purge(self) -> None:
        """Delete rows that ran out (at most a thousand of each kind); they limit nothing."""
        await self.backend.pool.execute(self.sql["purge"])

    @reaching
    async def reserve_rate(self, key: str, interval: float, tolerance: float) -> float:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.reserve_rate` (one statement)."""
        await self._tables()
        wait = await self.backend.pool.fetchval(self.sql["reserve_rate"], key, interval, tolerance)
        return float(wait or 0.0)

    @reaching
    async def acquire_slot(self, key: str, holder: str, limit: int, lease: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.acquire_slot` (one statement a try)."""
        await self._tables()
        pool = self.backend.pool
        for _ in range(self._SLOT_TRIES):
            if await pool.fetchval(self.sql["acquire_slot"], key, holder, limit, lease) is not None:
                return True
            free = await pool.fetchval(
                self.sql["free"],
                key,
                limit,
            )
            if not free:
                return False
        return False

    @reaching
    async def renew_slots(self, held: Sequence[tuple[str, str, float]]) -> None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.renew_slots` (one statement)."""
        await self._tables()
        keys = [key for key, _, _ in held]
        holders = [holder for _, holder, _ in held]
        leases = [lease for _, _, lease in held]
        await self.backend.pool.execute(self.sql["renew_slots"], keys, holders, leases)

    @reaching
    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.release_slot`."""
        await self._tables()
        await self.backend.pool.execute(self.sql["release_slot"], key, holder)

    @reaching
    async def claim(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.claim`."""
        await self._tables()
        pool = self.backend.pool
        while True:
            if await pool.fetchval(self.sql["claim"], key, holder, ttl) is not None:
                return None
            current = await pool.fetchval(self.sql["holder"], key)
            if current is not None:
                return str(current)
            # The claim ran out between the two statements: claim again.

    @reaching
    async def replace_claim(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.replace_claim`."""
        await self._tables()
        done = await self.backend.pool.fetchval(self.sql["replace_claim"], key, old, new, ttl)
        return bool(done == 1)

    @reaching
    async def set_latest(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.set_latest`."""
        await self._tables()
        pool = self.backend.pool
        while True:
            row = await pool.fetchrow(self.sql["swap_latest"], key, holder, ttl)
            if row is not None:
                return None if row[0] is None else str(row[0])
            if await pool.fetchval(self.sql["insert_latest"], key, holder, ttl) is not None:
                return None
            # Another kick inserted the key in between: swap with it.

    @reaching
    async def latest(self, key: str) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.latest`."""
        await self._tables()
        current = await self.backend.pool.fetchval(self.sql["holder"], key)
        return None if current is None else str(current)

    async def replace_latest(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.replace_latest` (rows of the claims)."""
        return await self.replace_claim(key, old, new, ttl)
