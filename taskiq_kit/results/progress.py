"""Progress of a running task, as stored by every kit result backend."""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticSerializationError, to_jsonable_python

from taskiq_kit.exceptions import InvalidProgressError

#: ``state`` of progress written through :class:`~taskiq_kit.results.tracker.Progress`.
PROGRESS_STATE = "PROGRESS"


class ProgressReport(BaseModel):
    """The latest progress of a task. Times are unix seconds.

    Attributes:
        fraction: done so far, from 0 to 1 (``None`` when written through taskiq's own
            ``ProgressTracker``, which has no fraction).
        message: what the task is doing, for people.
        meta: JSON-compatible data for programs.
        state: taskiq's progress state (``"PROGRESS"`` for kit reports).
        updated_at: when the task reported it.

    """

    model_config = ConfigDict(frozen=True)

    fraction: float | None = Field(default=None, ge=0.0, le=1.0)
    message: str | None = None
    meta: Any = None
    state: str = PROGRESS_STATE
    updated_at: float = Field(default_factory=time.time)


def jsonable_meta(meta: object) -> Any:
    """Return ``meta`` as JSON-compatible data (models, dataclasses, datetimes converted).

    Raises:
        InvalidProgressError: when ``meta`` cannot be represented as JSON.

    """
    try:
        return to_jsonable_python(meta)
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidProgressError(
            field="meta", value=type(meta).__name__, reason=f"not JSON-serialisable ({exc})"
        ) from exc


def make_report(
    fraction: float, *, message: str | None = None, meta: object = None
) -> ProgressReport:
    """Validate and build a kit progress report.

    Raises:
        InvalidProgressError: when ``fraction`` is not a number from 0 to 1, ``message`` is not
            a string, or ``meta`` is not JSON-serialisable.

    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise InvalidProgressError(field="fraction", value=fraction, reason="expected a number")
    if not math.isfinite(fraction) or not 0.0 <= fraction <= 1.0:
        raise InvalidProgressError(
            field="fraction", value=fraction, reason="expected a number from 0 to 1 (0.4 = 40 %)"
        )
    if message is not None and not isinstance(message, str):
        raise InvalidProgressError(field="message", value=message, reason="expected a string")
    return ProgressReport(fraction=float(fraction), message=message, meta=jsonable_meta(meta))
