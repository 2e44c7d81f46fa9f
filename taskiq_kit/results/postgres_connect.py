"""Reaching PostgreSQL: the pool opened at start-up, its failures as the kit's errors."""

from __future__ import annotations

import asyncio

import asyncpg

from taskiq_kit.exceptions import AccessRefusedError
from taskiq_kit.results.reach import ReachableStore, unavailable
from taskiq_kit.urls import scrub

#: Errors meaning "PostgreSQL is not reachable right now" (down, restarting, out of connections).
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
#: Errors meaning "PostgreSQL answered and refused the URL's role, password or database".
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


async def open_pool(
    store: ReachableStore, *, min_size: int, max_size: int
) -> asyncpg.Pool[asyncpg.Record]:
    """Open the store's pool (its first ``min_size`` connections), failing fast.

    Raises:
        ResultStoreNotAvailableError: when PostgreSQL cannot be reached in ``connect_timeout``.
        AccessRefusedError: when it refuses the URL's role, password or database.

    """
    try:
        return await asyncio.wait_for(
            asyncpg.create_pool(
                store.url, min_size=min_size, max_size=max_size, timeout=store.connect_timeout
            ),
            # Each of the first connections may take up to connect_timeout.
            store.connect_timeout * max(1, min_size),
        )
    except REFUSED as exc:
        reason = scrub(str(exc), store.url) or type(exc).__name__
        raise AccessRefusedError(target=store.target, reason=reason) from exc
    except UNREACHABLE as exc:
        raise unavailable(store, exc) from exc
