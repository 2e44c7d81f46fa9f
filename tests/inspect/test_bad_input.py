"""Bad input to the inspect functions raises their typed errors, never a store's or Python's own."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from taskiq_kit import make_broker
from taskiq_kit.exceptions import InvalidCursorError, InvalidQueryError
from taskiq_kit.inspect import (
    delete_dead_letters,
    list_dead_letters,
    list_tasks,
    replay_dead_letters,
)
from taskiq_kit.inspect.api import make_query
from taskiq_kit.inspect.cursor import fingerprint
from tests.inspect.conftest import MakeBroker


def _forged(at: float) -> str:
    """A task-listing cursor of the unfiltered query holding ``at`` (not a finite time)."""
    raw = json.dumps([fingerprint(make_query()), at, "some-task"])
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize("cursor", [123, b"abc", _forged(float("nan")), _forged(float("inf"))])
async def test_a_cursor_that_holds_no_position_is_refused(
    make_kit: MakeBroker, cursor: Any
) -> None:
    broker = await make_kit()
    with pytest.raises(InvalidCursorError):
        await list_tasks(broker, cursor=cursor)


@pytest.mark.parametrize("cursor", [123, b"abc"])
async def test_a_dead_letter_cursor_that_is_no_text_is_refused(cursor: Any) -> None:
    broker = make_broker("memory://")
    await broker.startup()
    try:
        with pytest.raises(InvalidCursorError):
            await list_dead_letters(broker, cursor=cursor)
    finally:
        await broker.shutdown()


@pytest.mark.parametrize("ids", [None, 5, b"id", [b"id"]])
async def test_dead_letter_ids_that_are_no_list_of_ids_are_refused(ids: Any) -> None:
    broker = make_broker("memory://")
    await broker.startup()
    try:
        for call in (replay_dead_letters, delete_dead_letters):
            with pytest.raises(InvalidQueryError, match="ids"):
                await call(broker, ids)
    finally:
        await broker.shutdown()


async def test_a_status_given_as_bytes_is_named_in_the_error() -> None:
    broker = make_broker("memory://")
    await broker.startup()
    try:
        with pytest.raises(InvalidQueryError, match=r"status=b'pending'"):
            await list_tasks(broker, status=b"pending")  # type: ignore[arg-type]
    finally:
        await broker.shutdown()
