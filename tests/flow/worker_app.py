"""A broker module for ``taskiq worker tests.flow.worker_app:broker`` in the flow tests.

Configured from the environment: ``KIT_TEST_CONFIG`` (``redis``: Redis broker and store;
``pg``: Redis broker, PostgreSQL store; ``rabbit``: RabbitMQ broker, Redis store), ``KIT_TEST_NAME`` (queue, key prefix and table),
``KIT_FLOW_RATE`` (the ``limited`` task's rate limit, default ``10/s``). The tasks record what
they do in Redis under ``kit-test:{<name>}:*`` (see :func:`key`), so the tests can count runs
and compute overlaps across processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from redis.asyncio import Redis

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.flow import Concurrency, Debounce

AMQP_URL = os.environ.get("TASKIQ_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TASKIQ_KIT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
#: Concurrency of ``capped``; lease of ``holder``'s slot (seconds).
CAPPED_LIMIT = 3
HOLDER_LEASE = 2.0


def build(config: str, name: str, **options: Any) -> KitBroker:
    """The broker of ``config``, its queue, keys and table named after ``name``."""
    if config == "rabbit":
        return make_broker(
            AMQP_URL,
            result_url=REDIS_URL,
            result_options={"prefix": name},
            exchange=name,
            queue_name=name,
            **options,
        )
    common: dict[str, Any] = {"queue_name": name, "key_prefix": name, **options}
    if config == "redis":
        return make_broker(REDIS_URL, result_options={"prefix": name}, **common)
    if config == "pg":
        return make_broker(
            REDIS_URL, result_url=POSTGRES_URL, result_options={"table": name}, **common
        )
    raise ValueError(f"unknown KIT_TEST_CONFIG {config!r}")


def key(name: str, what: str) -> str:
    """The Redis key where the tasks of the app ``name`` record ``what``."""
    return f"kit-test:{{{name}}}:{what}"


NAME = os.environ.get("KIT_TEST_NAME", "kit-test-flow")
broker = build(os.environ.get("KIT_TEST_CONFIG", "redis"), NAME)
_client: Redis | None = None


def redis() -> Redis:
    """One client per process (the worker runs one event loop)."""
    global _client  # noqa: PLW0603 - one client per worker process
    if _client is None:
        _client = Redis.from_url(REDIS_URL)
    return _client


@broker.task(task_name="limited", rate_limit=os.environ.get("KIT_FLOW_RATE", "10/s"))
async def limited(i: int) -> int:
    """Record the instant this run starts."""
    await redis().rpush(key(NAME, "starts"), repr(time.time()))
    return i


@broker.task(task_name="capped", concurrency=Concurrency(CAPPED_LIMIT, lease=5.0))
async def capped(i: int) -> int:
    """Record this run's start and end (``+<time>`` / ``-<time>``), running 0.3 s in between."""
    await redis().rpush(key(NAME, "events"), f"+{time.time()!r}")
    await asyncio.sleep(0.3)
    await redis().rpush(key(NAME, "events"), f"-{time.time()!r}")
    return i


@broker.task(task_name="holder", concurrency=Concurrency(1, lease=HOLDER_LEASE))
async def holder(tag: str) -> str:
    """Record the start (tag, pid, time); the very first run of ``"stuck"`` never ends."""
    client = redis()
    await client.rpush(key(NAME, "holder"), f"{tag} {os.getpid()} {time.time()!r}")
    if tag == "stuck" and await client.incr(key(NAME, "stuck-runs")) == 1:
        await asyncio.sleep(3600)
    return tag


@broker.task(task_name="unique", unique_for=60)
async def unique(n: int) -> int:
    """Count this run; take a second, so later kicks find it running."""
    await redis().incr(key(NAME, "unique-runs"))
    await asyncio.sleep(1.0)
    return n


@broker.task(task_name="debounced", debounce=Debounce(1.5, key=lambda doc, **_: doc))
async def debounced(doc: str, version: str) -> str:
    """Record which version ran."""
    await redis().rpush(key(NAME, "debounced"), version)
    return version
