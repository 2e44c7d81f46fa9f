"""The Redis Cluster split of a record write: the record script, then the index script."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from taskiq_kit.inspect.models import TaskQuery
from taskiq_kit.results.record import TaskStatus
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.results.redis_index import APPLY_MOVES
from taskiq_kit.results.redis_writes import WRITE_RECORDS_ONLY, parse
from taskiq_kit.results.writes import FINAL, KICK, RecordWrite
from tests.results.conftest import delete_redis_keys


async def test_records_then_index_in_two_calls_index_the_same(redis_url: str) -> None:
    prefix = f"kit-test-split-{uuid.uuid4().hex[:10]}"
    store: RedisResultBackend[object] = RedisResultBackend(redis_url, prefix=prefix)
    await store.startup()
    client = Redis.from_url(redis_url)
    try:
        now = time.time()
        fields = {"status": "pending", "task_name": "split.task", "queue": "q", "updated_at": now}
        kick = RecordWrite("t1", KICK, fields, now, 1)
        done = RecordWrite("t1", FINAL, {"status": "success", "updated_at": now + 1}, now, 1)
        moves = []
        for write in (kick, done):
            keys, args = store.script_call([write])
            reply = await client.eval(WRITE_RECORDS_ONLY, len(keys), *keys, *args)
            assert parse(reply[0])[0].applied
            assert len(reply) == 1 + 9  # one move
            moves.append(reply[1:])
            # Nothing is indexed until the index's own call.
            if write is kick:
                assert await client.zcard(store.keys.index() + "all") == 0
            await client.eval(
                APPLY_MOVES, 1, store.keys.index_anchor(), store.keys.index(), *moves[-1]
            )
        # The kick's move again, late (as when two writers' index calls cross): older than the
        # entry's stamp, it leaves the task under success.
        assert int(moves[0][7]) < int(moves[1][7])
        await client.eval(APPLY_MOVES, 1, store.keys.index_anchor(), store.keys.index(), *moves[0])
        page = await store.list_tasks(TaskQuery(), limit=10, cursor=None)
        assert [(r.task_id, r.status.value, r.queue) for r in page.tasks] == [
            ("t1", "success", "q")
        ]
        counts = await store.count_tasks(TaskQuery(task_name="split.task"))
        assert counts[TaskStatus.SUCCESS] == 1
        assert await client.zcard(store.keys.index() + "status:pending") == 0
    finally:
        await client.aclose()
        await store.shutdown()
        await delete_redis_keys(redis_url, f"{prefix}:*")
