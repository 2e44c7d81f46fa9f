"""The broker of ``bench/flow_bench.py`` (worker and client alike), built from the environment.

``BENCH_NAME`` names this run's queue, keys and prefix. Run by
``taskiq worker bench.flow_app:broker --workers 1 --max-async-tasks 100``.
"""

from __future__ import annotations

import os

from taskiq_kit import make_broker

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NAME = os.environ.get("BENCH_NAME", "kit-flow-bench")

broker = make_broker(REDIS_URL, queue_name=NAME, key_prefix=NAME, result_options={"prefix": NAME})


@broker.task(task_name="plain")
async def plain() -> None:
    """No flow control."""


# Limits that never bind: what is measured is the cost of checking them.
@broker.task(task_name="rated", rate_limit="1000000/s")
async def rated() -> None:
    """A rate limit (one GCRA script call per run)."""


@broker.task(task_name="capped", concurrency=100_000)
async def capped() -> None:
    """A concurrency limit (a slot taken, renewed while running, released)."""


@broker.task(task_name="both", rate_limit="1000000/s", concurrency=100_000)
async def both() -> None:
    """Both limits."""
