"""The broker module of ``bench/redis_cluster_bench.py``: ``taskiq worker bench.redis_cluster_app:broker``.

Configured from the environment: ``KIT_BENCH_REDIS_URL`` (any kit Redis URL: one server, a
cluster, Sentinels) and ``KIT_BENCH_QUEUE``. Results go to the same Redis (the kit's default);
``noop`` counts its runs in ``kit-bench:{<queue>}:done`` (on the queue's slot).
"""

from __future__ import annotations

import os

from taskiq_kit import make_broker
from taskiq_kit.redis.connect import RedisClient, make_client

URL = os.environ.get("KIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("KIT_BENCH_QUEUE", "kit-bench")

broker = make_broker(URL, queue_name=QUEUE, result_options={"prefix": QUEUE})
_clients: list[RedisClient] = []


def done_key(queue: str) -> str:
    """The counter of finished ``noop`` runs."""
    return f"kit-bench:{{{queue}}}:done"


@broker.task(task_name="noop")
async def noop(number: int) -> int:
    """Count one run."""
    if not _clients:
        # Room for every concurrent task: a cluster client's node pools fail when full.
        _clients.append(make_client(URL, max_connections=200))
    await _clients[0].incr(done_key(QUEUE))
    return number
