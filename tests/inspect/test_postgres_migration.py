"""A results table made by an older version gains the index columns in place, rows kept."""

from __future__ import annotations

import json
import time
import uuid

import asyncpg

from taskiq_kit.inspect.models import TaskQuery
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.record import TaskStatus
from tests.inspect.conftest import drop_tables


async def test_old_table_is_migrated_and_its_rows_listed(postgres_url: str) -> None:
    table = f"kit_test_old_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        # The schema of the version before the index.
        await conn.execute(
            f'CREATE TABLE "{table}" (task_id text PRIMARY KEY, record jsonb, '
            "result bytea, progress jsonb, expires_at timestamptz)"
        )
        kicked = time.time()
        record = {"status": "success", "task_name": "old.task", "kicked_at": kicked}
        await conn.execute(
            f'INSERT INTO "{table}" (task_id, record, expires_at) '
            "VALUES ('old-1', $1::jsonb, now() + interval '1 hour')",
            json.dumps(record),
        )
    finally:
        await conn.close()
    store: PostgresResultBackend[object] = PostgresResultBackend(
        postgres_url, table=table, purge_interval=None
    )
    try:
        await store.startup()
        page = await store.list_tasks(TaskQuery(task_name="old.task"), limit=10, cursor=None)
        assert [(r.task_id, r.status) for r in page.tasks] == [("old-1", TaskStatus.SUCCESS)]
        counts = await store.count_tasks(TaskQuery(since=kicked - 1))
        assert counts[TaskStatus.SUCCESS] == 1
    finally:
        await store.shutdown()
        await drop_tables(postgres_url, table)
