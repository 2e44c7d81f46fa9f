"""A kick's arguments on its record: as JSON text, cut to a size, redacted or left out on request.

A store's ``record_args`` option says what is kept: ``True`` (the default) keeps them,
``False`` keeps none, and a function ``(task_name, args, kwargs)`` returns the ``(args, kwargs)``
to keep (e.g. with secrets masked), or ``None`` to keep none for that task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from pydantic_core import PydanticSerializationError, to_json

#: What to keep of a kick's arguments: all, none, or what a function returns.
ArgsHook: TypeAlias = Callable[
    [str, Sequence[Any], Mapping[str, Any]], tuple[Sequence[Any], Mapping[str, Any]] | None
]
RecordArgs: TypeAlias = bool | ArgsHook

#: Bytes of JSON kept of ``args`` and of ``kwargs`` each, by default.
DEFAULT_ARGS_LIMIT = 1024
_CUT = "..."


def _json(value: object, limit: int) -> tuple[str, bool]:
    try:
        data = to_json(value, fallback=repr)
    except (PydanticSerializationError, ValueError, TypeError):
        data = to_json(repr(value))
    if len(data) <= limit:
        return data.decode(), False
    # Cut on a character boundary.
    return data[: max(0, limit - len(_CUT))].decode(errors="ignore") + _CUT, True


def argument_fields(
    policy: RecordArgs,
    limit: int,
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> dict[str, object]:
    """The record fields keeping ``args`` and ``kwargs`` by ``policy``, each cut to ``limit`` bytes.

    A hook that raises keeps nothing: arguments must never stop a kick.
    """
    if policy is False:
        return {}
    if policy is not True:
        try:
            kept = policy(task_name, args, kwargs)
        except Exception:  # noqa: BLE001 - a failing redaction hook keeps nothing
            return {}
        if kept is None:
            return {}
        args, kwargs = kept
    args_text, args_cut = _json(list(args), limit)
    kwargs_text, kwargs_cut = _json(dict(kwargs), limit)
    fields: dict[str, object] = {"args": args_text, "kwargs": kwargs_text}
    if args_cut or kwargs_cut:
        fields["args_truncated"] = True
    return fields
