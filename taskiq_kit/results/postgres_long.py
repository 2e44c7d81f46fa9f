"""Long-task leases in PostgreSQL: one row per kept message, beside the results table.

The table is ``<results table>_long``; a sweep claims expired rows with one ``UPDATE ...
FOR UPDATE SKIP LOCKED``, so two sweeps never claim the same row. See
:mod:`taskiq_kit.flow.long`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskiq_kit.flow.long_parts import KeptMessage

if TYPE_CHECKING:
    from taskiq_kit.results.postgres import PostgresResultBackend


def _quoted(table: str) -> str:
    # ``table`` was validated by the results backend (letters, digits, ``_``, one dot at most).
    return ".".join(f'"{part}"' for part in table.split("."))


def lease_sql(table: str) -> dict[str, str]:
    """The statements of the lease table of results table ``table`` (already validated)."""
    name = _quoted(f"{table}_long")
    columns = "task_id, task_name, queue, body, priority, resends"
    return {
        "create": (
            f"CREATE TABLE IF NOT EXISTS {name} (task_id text PRIMARY KEY, task_name text NOT "
            "NULL, queue text NOT NULL, body bytea NOT NULL, priority int, resends int NOT NULL "
            "DEFAULT 0, owner text NOT NULL, expires_at float8 NOT NULL)"
        ),
        "keep": (
            f"INSERT INTO {name} ({columns}, owner, expires_at) "  # noqa: S608
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (task_id) DO UPDATE SET "
            "task_name = EXCLUDED.task_name, queue = EXCLUDED.queue, body = EXCLUDED.body, "
            "priority = EXCLUDED.priority, resends = EXCLUDED.resends, owner = EXCLUDED.owner, "
            "expires_at = EXCLUDED.expires_at"
        ),
        "renew": (
            f"WITH held AS (UPDATE {name} SET expires_at = $3 "  # noqa: S608
            "WHERE task_id = ANY($1::text[]) AND owner = $2 RETURNING task_id) "
            "SELECT id FROM unnest($1::text[]) AS id WHERE id NOT IN (SELECT task_id FROM held)"
        ),
        "release": f"DELETE FROM {name} WHERE task_id = $1 AND owner = $2",  # noqa: S608
        "is_kept": f"SELECT true FROM {name} WHERE task_id = $1",  # noqa: S608
        "claim": (
            f"UPDATE {name} AS t SET owner = $2, expires_at = $3 WHERE task_id IN ("  # noqa: S608
            f"SELECT task_id FROM {name} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $4 "
            f"FOR UPDATE SKIP LOCKED) RETURNING {columns}"
        ),
    }


class PostgresLeaseStore:
    """The :class:`~taskiq_kit.flow.long.LeaseStore` of a :class:`PostgresResultBackend`.

    The table is created at first use unless the backend was built with
    ``create_table=False`` (then run :meth:`schema_sql` in your migrations).

    Args:
        backend: the result backend (its pool and table name are used).

    """

    def __init__(self, backend: PostgresResultBackend[Any]) -> None:
        self.backend = backend
        self._sql = lease_sql(backend.table)
        self._ready = not backend.create_table
        self._lock = asyncio.Lock()

    def schema_sql(self) -> list[str]:
        """The statement creating the lease table (for migrations)."""
        return [self._sql["create"]]

    async def _setup(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.backend.pool.execute(self._sql["create"])
                self._ready = True

    async def keep(self, message: KeptMessage, *, owner: str, until: float) -> None:
        """Store ``message`` and its lease (one upsert)."""
        await self._setup()
        await self.backend.pool.execute(
            self._sql["keep"],
            message.task_id,
            message.task_name,
            message.queue,
            message.body,
            message.priority,
            message.resends,
            owner,
            until,
        )

    async def renew(self, task_ids: Sequence[str], *, owner: str, until: float) -> list[str]:
        """Extend ``owner``'s leases; return the ids it no longer holds."""
        await self._setup()
        rows = await self.backend.pool.fetch(self._sql["renew"], list(task_ids), owner, until)
        return [str(row["id"]) for row in rows]

    async def release(self, task_id: str, *, owner: str) -> None:
        """Delete the lease and message of ``task_id`` if ``owner`` holds it."""
        await self._setup()
        await self.backend.pool.execute(self._sql["release"], task_id, owner)

    async def is_kept(self, task_id: str) -> bool:
        """Whether a message of ``task_id`` is kept."""
        await self._setup()
        return bool(await self.backend.pool.fetchval(self._sql["is_kept"], task_id))

    async def claim_expired(
        self, *, now: float, owner: str, until: float, limit: int
    ) -> list[KeptMessage]:
        """Claim up to ``limit`` expired leases for ``owner`` (one statement: atomic)."""
        await self._setup()
        rows = await self.backend.pool.fetch(self._sql["claim"], now, owner, until, limit)
        return [
            KeptMessage(
                task_id=row["task_id"],
                task_name=row["task_name"],
                queue=row["queue"],
                body=bytes(row["body"]),
                priority=row["priority"],
                resends=row["resends"],
            )
            for row in rows
        ]
