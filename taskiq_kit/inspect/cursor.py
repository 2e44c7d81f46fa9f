"""Page cursors shared by every task index: opaque to callers, tied to the filters they page.

A cursor holds the position of the last record of a page (its kick time and task id: the
listing's order, newest first, ties broken by task id) and a fingerprint of the query, so a
cursor given with other filters is refused rather than silently skipping or repeating records.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import NamedTuple

from taskiq_kit.exceptions import InvalidCursorError
from taskiq_kit.inspect.models import TaskQuery


class Position(NamedTuple):
    """Where a page ended: the last record's sort time and task id."""

    at: float
    task_id: str


def fingerprint(query: TaskQuery) -> str:
    """A short digest of ``query``'s filters."""
    text = json.dumps(query.model_dump(mode="json"), sort_keys=True, default=sorted)
    return hashlib.blake2s(text.encode(), digest_size=6).hexdigest()


def encode_cursor(query: TaskQuery, position: Position) -> str:
    """The cursor continuing ``query``'s listing after ``position``."""
    raw = json.dumps([fingerprint(query), position.at, position.task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: TaskQuery, cursor: str) -> Position:
    """The position ``cursor`` holds.

    Raises:
        InvalidCursorError: when ``cursor`` is malformed or was made for other filters.

    """
    if not isinstance(cursor, str):
        raise InvalidCursorError(cursor=repr(cursor)[:60], reason="a cursor is a str")
    shown = cursor if len(cursor) <= 60 else f"{cursor[:60]}..."
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        digest, at, task_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError(cursor=shown, reason="not a cursor of a task listing") from exc
    if (
        not isinstance(at, (int, float))
        or isinstance(at, bool)
        or not math.isfinite(at)
        or not isinstance(task_id, str)
    ):
        raise InvalidCursorError(cursor=shown, reason="not a cursor of a task listing")
    if digest != fingerprint(query):
        raise InvalidCursorError(cursor=shown, reason="it was made for other filters")
    return Position(float(at), task_id)
