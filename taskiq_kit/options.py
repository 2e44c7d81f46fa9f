"""Checks of ``make_broker``'s keyword options when the broker is built, not at the first kick.

Names are checked against the constructor of the class that takes them, types against its
annotations (with pydantic, strictly: ``"1h"`` is not a number of seconds), and ranges against
:data:`RANGES`, whose settings entries come from :class:`~taskiq_kit.settings.KitSettings`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    ValidationError,
    create_model,
)
from pydantic.fields import FieldInfo
from pydantic_core import SchemaError

from taskiq_kit.exceptions import InvalidOptionError, UnknownOptionError
from taskiq_kit.settings import KitSettings

#: Ranges of numeric options the constructors take as plain ``int`` / ``float``.
RANGES: dict[str, FieldInfo] = {
    **KitSettings.model_fields,
    "publish_timeout": Field(gt=0),
    "reconnect_interval": Field(gt=0),
    "abort_poll_interval": Field(gt=0),
    "pool_timeout": Field(gt=0),
    "purge_interval": Field(gt=0),
    "prefetch_count": Field(ge=1),
    "delay_levels": Field(ge=1, le=40),
    "max_priority": Field(ge=1, le=255),
    "max_async_tasks": Field(ge=1),
    "sync_tasks_pool_size": Field(ge=1),
    "dead_letter_maxlen": Field(ge=1),
    "purge_batch": Field(ge=1),
    "min_pool_size": Field(ge=0),
    "max_pool_size": Field(ge=1),
    "max_connections": Field(ge=1),
    "max_entries": Field(ge=1),
    "record_args_limit": Field(ge=16),
    "worker_heartbeat": Field(gt=0),
}
#: Constructor parameters that ``make_broker`` fills itself.
_FILLED = frozenset({"self", "url", "result_backend"})
_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)


def parameters(target: type) -> tuple[dict[str, Any], bool]:
    """The keyword options of ``target``'s constructor (name -> annotation) and ``**kwargs``.

    Returns:
        The named options and whether the constructor takes other keywords too.

    """
    return _parameters(target)


@functools.cache
def _parameters(target: type) -> tuple[dict[str, Any], bool]:
    try:
        signature = inspect.signature(target, eval_str=True)
    except NameError:  # an annotation that cannot be resolved: check names only
        signature = inspect.signature(target)
    named: dict[str, Any] = {}
    var_keyword = False
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL and name not in _FILLED:
            annotation = param.annotation
            named[name] = Any if annotation is inspect.Parameter.empty else annotation
    return named, var_keyword


@functools.cache
def _model(name: str, hint: Any) -> type[BaseModel] | None:
    field = RANGES.get(name) or Field()
    try:
        return create_model(f"Option_{name}", __config__=_STRICT, value=(hint, field))
    except (PydanticSchemaGenerationError, SchemaError, TypeError):
        return None  # a type pydantic cannot check (e.g. a protocol): the constructor will


def check_value(name: str, value: object, hint: Any = Any) -> None:
    """Check one option against its annotation and its range in :data:`RANGES`.

    Raises:
        InvalidOptionError: for a value of the wrong type or out of range.

    """
    model = _model(name, hint)
    if model is None:
        return
    try:
        model.model_validate({"value": value})
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        shown = "***" if "pass" in name else repr(value)
        raise InvalidOptionError(option=f"{name}={shown}", reason=error["msg"]) from None


def check_options(
    target: type, options: Mapping[str, object], *, also_valid: tuple[str, ...] = ()
) -> dict[str, object]:
    """Check ``options`` for ``target``'s constructor; return those it takes as ``**kwargs``.

    Args:
        target: the broker or result-store class.
        options: the keyword options given.
        also_valid: names handled elsewhere (listed as valid, not checked here).

    Raises:
        UnknownOptionError: for an option ``target`` does not take (when it has no ``**kwargs``).
        InvalidOptionError: for a value of the wrong type or out of range.

    """
    named, var_keyword = _parameters(target)
    extra: dict[str, object] = {}
    for name, value in options.items():
        if name in named:
            check_value(name, value, named[name])
        elif var_keyword:
            extra[name] = value
        elif name not in also_valid:
            valid = ", ".join(sorted({*named, *also_valid}))
            raise UnknownOptionError(target=target.__name__, option=name, valid=valid)
    return extra
