"""The long-task lease stores (Redis, PostgreSQL) on the real servers, and the keeper's policy.

See :mod:`taskiq_kit.flow.long`. The end-to-end tests (a RabbitMQ node with a short
``consumer_timeout``, worker processes killed mid-task) are in tests/rabbit/test_long_tasks.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import pytest

from taskiq_kit.flow.long import (
    InFlight,
    KeptMessage,
    LeaseStore,
    LongTaskKeeper,
    labelled_long,
    lease_store_of,
)
from taskiq_kit.memory import MemoryResultBackend
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.redis import RedisResultBackend
from tests.inspect.conftest import delete_keys
from tests.results.conftest import delete_redis_keys


@pytest.fixture(
    params=[
        "redis",
        "postgres",
        pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LeaseStore]:
    """A started backend's lease store; its keys or tables are removed afterwards."""
    run = uuid.uuid4().hex[:10]
    if request.param == "redis-cluster":
        cluster_url: str = request.getfixturevalue("redis_cluster").url
        cluster_backend = RedisResultBackend[Any](cluster_url, prefix=f"kit-test-long-{run}")
        await cluster_backend.startup()
        found = lease_store_of(cluster_backend)
        assert found is not None
        yield found
        await cluster_backend.shutdown()
        await delete_keys(cluster_url, f"kit-test-long-{run}:*")
        return
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        redis_backend = RedisResultBackend[Any](url, prefix=f"kit-test-long-{run}")
        await redis_backend.startup()
        found = lease_store_of(redis_backend)
        assert found is not None
        yield found
        await redis_backend.shutdown()
        await delete_redis_keys(url, f"kit-test-long-{run}:*")
        return
    url = request.getfixturevalue("postgres_url")
    table = f"kit_test_long_{run}"
    pg_backend = PostgresResultBackend[Any](url, table=table, purge_interval=None)
    await pg_backend.startup()
    found = lease_store_of(pg_backend)
    assert found is not None
    yield found
    await pg_backend.shutdown()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_long"')
    finally:
        await conn.close()


def message(task_id: str, resends: int = 0) -> KeptMessage:
    return KeptMessage(task_id, "name", "queue", b"\x00body\xff", priority=3, resends=resends)


@pytest.mark.redis
@pytest.mark.postgres
async def test_lease_store_keeps_renews_releases_by_owner(store: LeaseStore) -> None:
    now = time.time()
    await store.keep(message("a"), owner="w1", until=now + 60)
    await store.keep(message("b"), owner="w1", until=now + 60)
    assert await store.is_kept("a")
    assert not await store.is_kept("nope")
    # Renewing: w2 holds none of them; w1 loses only the id it never kept.
    assert sorted(await store.renew(["a", "b"], owner="w2", until=now + 60)) == ["a", "b"]
    assert await store.renew(["a", "b", "c"], owner="w1", until=now + 60) == ["c"]
    # Releasing needs the owner.
    await store.release("a", owner="w2")
    assert await store.is_kept("a")
    await store.release("a", owner="w1")
    assert not await store.is_kept("a")
    assert await store.claim_expired(now=now + 61, owner="w3", until=now + 120, limit=10) == [
        message("b")
    ]


@pytest.mark.redis
@pytest.mark.postgres
async def test_expired_lease_is_claimed_by_one_sweep_only(store: LeaseStore) -> None:
    now = time.time()
    await store.keep(message("live"), owner="w1", until=now + 60)
    for n in range(20):
        await store.keep(message(f"dead-{n}", resends=n), owner="w1", until=now - 1)
    sweeps = await asyncio.gather(
        *(store.claim_expired(now=now, owner=f"s{i}", until=now + 60, limit=100) for i in range(8))
    )
    claimed = [kept.task_id for sweep in sweeps for kept in sweep]
    assert sorted(claimed) == sorted(f"dead-{n}" for n in range(20))  # each once, live untouched
    by_id = {kept.task_id: kept for sweep in sweeps for kept in sweep}
    assert by_id["dead-7"] == message("dead-7", resends=7)  # the body and counts round-trip
    # A claim is a lease of the sweeper: nobody claims it again before it expires, and the
    # worker that kept it has lost it.
    assert await store.claim_expired(now=now + 30, owner="s9", until=now + 90, limit=100) == []
    assert await store.renew(["dead-0"], owner="w1", until=now + 60) == ["dead-0"]


def test_long_label_is_read_from_the_body() -> None:
    def body(labels: dict[str, Any]) -> bytes:
        return json.dumps({"task_name": "t", "labels": labels, "args": ["long"]}).encode()

    assert labelled_long(body({"long": True})) is True
    assert labelled_long(body({"long": "true"})) is True
    assert labelled_long(body({"long": False})) is False
    assert labelled_long(body({"long": "0"})) is False
    assert labelled_long(body({})) is None
    assert labelled_long(b'{"labels": "long"}') is None
    assert labelled_long(b"not json, long") is None


def test_memory_store_keeps_no_leases() -> None:
    # A process-local store dies with its worker: no other worker could ever see its leases.
    assert lease_store_of(MemoryResultBackend()) is None


@pytest.mark.parametrize(("lease", "after"), [(0.0, None), (-1.0, 5.0), (10.0, -1.0)])
def test_keeper_refuses_bad_settings(lease: float, after: float | None) -> None:
    with pytest.raises(ValueError, match="long_task"):
        LongTaskKeeper(_NoStore(), _NoTransport(), lease=lease, long_after=after)


class _Flight:
    def __init__(self, task_id: str, body: bytes, age: float) -> None:
        self.task_id = task_id
        self.received_at = time.monotonic() - age
        self.kept = False
        self.body = body
        self.done: Callable[[], Awaitable[None]] | None = None

    def kept_message(self) -> KeptMessage:
        return KeptMessage(self.task_id, "t", "q", self.body)

    async def settle_early(self, on_done: Callable[[], Awaitable[None]]) -> None:
        self.kept = True
        self.done = on_done


class _Transport:
    def __init__(self, flights: list[_Flight]) -> None:
        self.flights = flights
        self.resent: list[KeptMessage] = []
        self.dead: list[tuple[KeptMessage, str]] = []

    def in_flight(self) -> Iterable[InFlight]:
        return [flight for flight in self.flights if not flight.kept]

    async def resend(self, message: KeptMessage) -> None:
        self.resent.append(message)

    async def dead_letter(self, message: KeptMessage, reason: str) -> None:
        self.dead.append((message, reason))


class _NoTransport(_Transport):
    def __init__(self) -> None:
        super().__init__([])


class _NoStore:
    async def keep(self, message: KeptMessage, *, owner: str, until: float) -> None: ...
    async def renew(self, task_ids: Any, *, owner: str, until: float) -> list[str]:
        return []

    async def release(self, task_id: str, *, owner: str) -> None: ...
    async def is_kept(self, task_id: str) -> bool:
        return False

    async def claim_expired(
        self, *, now: float, owner: str, until: float, limit: int
    ) -> list[KeptMessage]:
        return []


@pytest.mark.redis
@pytest.mark.postgres
async def test_keeper_keeps_long_runs_releases_them_and_resends_orphans(
    store: LeaseStore,
) -> None:
    labelled = _Flight("labelled", b'{"labels": {"long": true}}', age=0.0)
    old = _Flight("old", b"{}", age=5.0)
    young = _Flight("young", b"{}", age=0.0)
    refused = _Flight("refused", b'{"labels": {"long": false}}', age=99.0)
    transport = _Transport([labelled, old, young, refused])
    keeper = LongTaskKeeper(store, transport, lease=30.0, long_after=2.0, max_resends=2)
    await keeper.keep_due()
    assert (labelled.kept, old.kept, young.kept, refused.kept) == (True, True, False, False)
    assert keeper.held == {"labelled", "old"}
    assert await store.is_kept("labelled")
    # The run's own ack ends it: the lease and the kept message go.
    assert labelled.done is not None
    await labelled.done()
    assert not await store.is_kept("labelled")
    assert keeper.held == {"old"}
    # A worker that died: its leases expired. One re-sent, one past max_resends dead-lettered.
    now = time.time()
    await store.keep(message("orphan", resends=1), owner="dead", until=now - 1)
    await store.keep(message("poison", resends=2), owner="dead", until=now - 1)
    assert await keeper.sweep() == 2
    assert [kept.task_id for kept in transport.resent] == ["orphan"]
    assert [kept.task_id for kept, _ in transport.dead] == ["poison"]
    assert not await store.is_kept("orphan")
    assert not await store.is_kept("poison")
    assert await store.is_kept("old")  # still leased by the keeper, untouched by its sweep
