"""What the task index costs a record write, in Redis and in PostgreSQL, run by hand.

Redis: sends the lifecycle's writes of ``--tasks`` tasks (kick, start, success: three writes each, in
batches of ``--batch`` per script call, as the lifecycle batches them) through the record script
with the index (the kit's ``WRITE_RECORDS``) and without it (the same records, no index moves),
interleaved, and prints the median server time per write (``INFO commandstats``) and wall time
per batch of each, and the index's memory per task. PostgreSQL (``--store postgres``): the same writes through the store's
``write_records`` into a table with the index's columns and indexes and into one without them
(the schema before the index), interleaved; median wall time per batch.

How to run (Redis / PostgreSQL on loopback)::

    .venv/bin/python bench/index_write_bench.py [--store redis|postgres] [--tasks 20000]
        [--batch 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskiq_kit.results import redis_writes
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.redis_index import INDEX_LIB
from taskiq_kit.results.redis_keys import ResultKeys
from taskiq_kit.results.writes import FINAL, KICK, RUN, RecordWrite

URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
WITHOUT_INDEX = INDEX_LIB + redis_writes._RECORDS + "\nreturn table.concat(out)\n"


def writes_of(ids: list[str], kind: str, now: float) -> list[RecordWrite]:
    if kind == KICK:
        fields = {"status": "pending", "task_name": "bench.task", "queue": "q", "updated_at": now}
        fields |= {"args": "[1,2]", "kwargs": "{}"}
    elif kind == RUN:
        fields = {"status": "started", "runs": 1, "worker": "h:1", "started_at": now}
        fields["updated_at"] = now
    else:
        fields = {"status": "success", "finished_at": now, "updated_at": now}
    return [
        RecordWrite(task_id, kind, dict(fields), now, 1, result=b"1" if kind == FINAL else None)
        for task_id in ids
    ]


async def run(
    client: Redis, script: str, prefix: str, tasks: int, batch: int
) -> tuple[float, float]:
    """Server microseconds per write, and wall milliseconds per batch."""
    keys = ResultKeys(prefix)
    sha = await client.script_load(script)
    await client.config_resetstat()
    walls = []
    ids = [uuid.uuid4().hex for _ in range(tasks)]
    for kind in (KICK, RUN, FINAL):
        for start in range(0, tasks, batch):
            now = time.time()
            writes = writes_of(ids[start : start + batch], kind, now)
            script_keys, args = redis_writes.pack(writes, keys, lambda _d, _n: 600.0, now)
            began = time.perf_counter()
            await client.evalsha(sha, len(script_keys), *script_keys, *args)
            walls.append(time.perf_counter() - began)
    stats = await client.info("commandstats")
    usec = stats["cmdstat_evalsha"]["usec"]
    return usec / (3 * tasks), statistics.median(walls) * 1000


async def run_postgres(table: str, indexed: bool, tasks: int, batch: int) -> float:
    """Wall milliseconds per batch of ``write_records`` into a fresh ``table``."""
    store: PostgresResultBackend[object] = PostgresResultBackend(
        POSTGRES_URL, table=table, create_table=indexed, purge_interval=None, result_ttl=600
    )
    if not indexed:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for statement in store.schema_sql()[:2]:  # the table and its expiry index only
                await conn.execute(statement)
        finally:
            await conn.close()
    await store.startup()
    walls = []
    ids = [uuid.uuid4().hex for _ in range(tasks)]
    try:
        for kind in (KICK, RUN, FINAL):
            for start in range(0, tasks, batch):
                writes = writes_of(ids[start : start + batch], kind, time.time())
                began = time.perf_counter()
                await store.write_records(writes)
                walls.append(time.perf_counter() - began)
    finally:
        async with store.pool.acquire() as conn:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_workers"')
        await store.shutdown()
    return statistics.median(walls) * 1000


async def main_postgres(options: argparse.Namespace) -> None:
    results: dict[str, list[float]] = {"with index": [], "without index": []}
    for _ in range(options.rounds):
        for name, indexed in (("with index", True), ("without index", False)):
            table = f"bench_index_{uuid.uuid4().hex[:8]}"
            results[name].append(await run_postgres(table, indexed, options.tasks, options.batch))
    print(
        f"PostgreSQL: {options.tasks} tasks x 3 writes (kick, start, success), {options.batch} "
        f"writes per statement, median of {options.rounds} interleaved rounds"
    )
    for name, rows in results.items():
        print(f"  {name:14} wall {statistics.median(rows):6.2f} ms/batch")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["redis", "postgres"], default="redis")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    if options.store == "postgres":
        await main_postgres(options)
        return
    client = Redis.from_url(URL)
    results: dict[str, list[tuple[float, float]]] = {"with index": [], "without index": []}
    memory: list[float] = []
    try:
        for _ in range(options.rounds):
            for name, script in (
                ("with index", redis_writes.WRITE_RECORDS),
                ("without index", WITHOUT_INDEX),
            ):
                prefix = f"bench-index-{uuid.uuid4().hex[:8]}"
                results[name].append(
                    await run(client, script, prefix, options.tasks, options.batch)
                )
                if name == "with index":
                    index = ResultKeys(prefix).index()
                    used = [
                        await client.memory_usage(key, samples=0) or 0
                        async for key in client.scan_iter(match=f"{index}*")
                    ]
                    memory.append(sum(used) / options.tasks)
                async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
                    await client.unlink(key)
    finally:
        await client.aclose()
    print(
        f"Redis: {options.tasks} tasks x 3 writes (kick, start, success), {options.batch} writes per "
        f"script call, median of {options.rounds} interleaved rounds"
    )
    for name, rows in results.items():
        server = statistics.median(row[0] for row in rows)
        wall = statistics.median(row[1] for row in rows)
        print(f"  {name:14} server {server:6.1f} us/write   wall {wall:6.2f} ms/batch")
    with_index = statistics.median(row[0] for row in results["with index"])
    without = statistics.median(row[0] for row in results["without index"])
    print(f"  index cost: +{with_index - without:.1f} us of Redis time per write")
    print(f"  index memory: {statistics.median(memory):.0f} bytes per task (MEMORY USAGE)")


if __name__ == "__main__":
    asyncio.run(main())
