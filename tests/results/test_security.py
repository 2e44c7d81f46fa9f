"""A payload planted in the result store by someone else never runs code on the reading side."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from taskiq_kit.exceptions import ResultDecodeError
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.redis import RedisResultBackend
from tests.results.conftest import MakeBackend, new_id


class _Exploit:
    """Unpickling this creates the file ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def payload(path: Path) -> bytes:
    return pickle.dumps(_Exploit(path))


async def plant(backend: Any, task_id: str, data: bytes, column: str = "result") -> None:
    """Write ``data`` straight into the store, as an attacker with write access would."""
    if isinstance(backend, RedisResultBackend):
        key = backend.keys.result(task_id) if column == "result" else backend.keys.progress(task_id)
        client = Redis.from_url(backend.url)
        try:
            await client.set(key, data)
        finally:
            await client.aclose()
        return
    assert isinstance(backend, PostgresResultBackend)
    conn = await asyncpg.connect(backend.url)
    try:
        if column == "result":
            await conn.execute(
                f'INSERT INTO "{backend.table}" (task_id, result) VALUES ($1, $2)', task_id, data
            )
        else:
            await conn.execute(
                f'INSERT INTO "{backend.table}" (task_id, progress) VALUES ($1, to_jsonb($2::text))',
                task_id,
                data.hex(),  # jsonb cannot hold raw bytes: a JSON string stands in
            )
    finally:
        await conn.close()


@pytest.mark.parametrize("backend_kind", ["redis", "postgres"])
async def test_planted_pickle_result_is_refused(make_backend: MakeBackend, tmp_path: Path) -> None:
    backend = await make_backend()
    marker = tmp_path / "pwned"
    task_id = new_id()
    await plant(backend, task_id, payload(marker))
    assert await backend.is_result_ready(task_id)
    with pytest.raises(ResultDecodeError, match="cannot be decoded as json") as caught:
        await backend.get_result(task_id)
    assert isinstance(caught.value, ValueError)
    assert not marker.exists()


@pytest.mark.parametrize("backend_kind", ["redis", "postgres"])
async def test_planted_progress_is_refused(make_backend: MakeBackend, tmp_path: Path) -> None:
    backend = await make_backend()
    marker = tmp_path / "pwned"
    task_id = new_id()
    await plant(backend, task_id, payload(marker), column="progress")
    with pytest.raises(ResultDecodeError):
        await backend.read_progress(task_id)
    assert not marker.exists()


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_the_payload_is_live_under_explicit_pickle(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    """The opt-in pickle serializer does run it: the refusal above is the JSON default's doing."""
    backend = await make_backend(serializer="pickle")
    marker = tmp_path / "pwned"
    task_id = new_id()
    await plant(backend, task_id, payload(marker))
    with pytest.raises(ResultDecodeError, match="not a result"):
        await backend.get_result(task_id)
    assert marker.exists()
