"""A broker module for ``taskiq worker tests.inspect.worker_app:broker`` in the worker tests.

A Redis broker (queue and key prefix ``KIT_TEST_NAME``) whose store is Redis or PostgreSQL
(``KIT_TEST_STORE``, table ``KIT_TEST_NAME``), beating every half second.
"""

from __future__ import annotations

import os
from typing import Any

from taskiq_kit import KitBroker, make_broker

REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TASKIQ_KIT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
HEARTBEAT = 0.5

NAME = os.environ.get("KIT_TEST_NAME", "kit-test-inspect-workers")
STORE = os.environ.get("KIT_TEST_STORE", "redis")


def build(
    store: str, name: str, heartbeat: float = HEARTBEAT, *, url: str = REDIS_URL
) -> KitBroker:
    """The Redis broker named ``name`` with its records in ``store`` (``redis``/``postgres``).

    ``url``: the broker's Redis (and the store's, for ``redis``), e.g. a private cluster's.
    """
    if store == "redis":
        return make_broker(
            url,
            queue_name=name,
            key_prefix=name,
            result_options={"prefix": name},
            worker_heartbeat=heartbeat,
        )
    return make_broker(
        REDIS_URL,
        result_url=POSTGRES_URL,
        queue_name=name,
        key_prefix=name,
        result_options={"table": name.replace("-", "_"), "purge_interval": None},
        worker_heartbeat=heartbeat,
    )


def register(target: KitBroker) -> tuple[Any, Any]:
    """The tasks ``workers.ok`` and ``workers.fail`` on ``target``."""

    @target.task(task_name="workers.ok")
    async def ok(value: int) -> int:
        return value

    @target.task(task_name="workers.fail")
    async def fail() -> None:
        raise RuntimeError("failing on purpose")

    return ok, fail


broker = build(STORE, NAME)
register(broker)
