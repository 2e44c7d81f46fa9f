"""Instants on the command line: ``15m`` / ``2h`` / ``3d`` ago, ISO-8601, or unix seconds."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


if TYPE_CHECKING:
    _ParamType = click.ParamType[float]  # generic from click 8.5 on
else:
    _ParamType = click.ParamType


class Instant(_ParamType):
    """A point in time, converted to unix seconds.

    ``30s``, ``15m``, ``2h``, ``3d``, ``1w`` ago; ISO-8601 (local time when it names no zone);
    or unix seconds.
    """

    name = "instant"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Unix seconds of ``value``."""
        if isinstance(value, float):
            return value
        text = str(value).strip()
        match = _AGO.match(text)
        if match:
            return time.time() - float(match.group(1)) * _UNIT[match.group(2)]
        try:
            return float(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not a time: use 15m / 2h / 3d (ago), ISO-8601 or unix seconds",
                param,
                ctx,
            )
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # local time
        return parsed.timestamp()


INSTANT = Instant()
