"""How results, status records and progress are turned into bytes, and back, safely.

JSON is the default everywhere: reading a stored result never imports or executes anything.
Pickle exists only as an explicit opt-in (:class:`PickleCodec`) for deployments that trust
every writer of their result store.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from taskiq.result import TaskiqResult

from taskiq_kit.exceptions import (
    ResultDecodeError,
    ResultNotSerializableError,
    TaskFailedError,
)
from taskiq_kit.results.label_codec import decode_labels, encode_labels
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import ErrorInfo, TaskRecord

logger = logging.getLogger("taskiq_kit.results")

#: Marks a stored result document written by this codec (and its version).
RESULT_FORMAT = "taskiq-kit/1"

Serializer = Literal["json", "pickle"]


class ResultCodec(Protocol):
    """Turns a :class:`TaskiqResult` into bytes and back."""

    name: str

    def encode(self, result: TaskiqResult[Any]) -> bytes:
        """Encode ``result``.

        Raises:
            ResultNotSerializableError: when the return value cannot be encoded.

        """

    def decode(self, data: bytes | str, *, task_id: str) -> TaskiqResult[Any]:
        """Decode what :meth:`encode` produced.

        Raises:
            ResultDecodeError: when ``data`` is not a result this codec wrote.

        """


def error_info(error: BaseException) -> ErrorInfo:
    """Describe ``error`` as data; never fails, even for exceptions whose ``str()`` raises."""
    if isinstance(error, TaskFailedError):
        return error.info
    try:
        return ErrorInfo.from_exception(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the outcome
        return ErrorInfo(type=type(error).__qualname__, message="<unprintable exception>")


class JSONCodec:
    """The default codec: a JSON document; errors become :class:`TaskFailedError` when read.

    Return values are converted with pydantic (models, dataclasses, datetimes, UUIDs, enums,
    sets and tuples are fine); they come back as plain JSON data (dicts, lists, strings).
    """

    name = "json"

    def encode(self, result: TaskiqResult[Any]) -> bytes:
        """Encode ``result`` as a JSON document.

        Raises:
            ResultNotSerializableError: when the return value is not JSON-serialisable.

        """
        try:
            value = to_jsonable_python(result.return_value)
        except (PydanticSerializationError, ValueError, TypeError, RecursionError) as exc:
            raise ResultNotSerializableError(
                type_name=_type_name(result.return_value), serializer="JSON", reason=str(exc)
            ) from exc
        document = {
            "format": RESULT_FORMAT,
            "is_err": result.is_err,
            "return_value": value,
            "execution_time": result.execution_time,
            "labels": encode_labels(result.labels),
            "log": result.log,
            "error": None if result.error is None else error_info(result.error).model_dump(),
        }
        return to_json(document)

    def decode(self, data: bytes | str, *, task_id: str) -> TaskiqResult[Any]:
        """Decode a JSON result document.

        Raises:
            ResultDecodeError: when ``data`` is not a kit JSON result (e.g. a pickle).

        """
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _decode_error(task_id, "json", f"not JSON ({exc})") from exc
        if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
            raise _decode_error(task_id, "json", f"not a {RESULT_FORMAT} result document")
        try:
            raw_error = document.get("error")
            error = (
                None
                if raw_error is None
                else TaskFailedError.from_info(ErrorInfo.model_validate(raw_error))
            )
            return TaskiqResult[Any](
                is_err=document["is_err"],
                return_value=document.get("return_value"),
                execution_time=document["execution_time"],
                labels=decode_labels(document.get("labels")),
                log=document.get("log"),
                error=error,
            )
        except (KeyError, ValidationError) as exc:
            raise _decode_error(task_id, "json", f"malformed result document ({exc})") from exc


class PickleCodec:
    """Pickle, as taskiq-redis does by default: **unsafe unless every writer is trusted**.

    Warning:
        Unpickling runs code chosen by whoever wrote the bytes. Anyone who can write to your
        Redis or PostgreSQL (a leaked password, a shared instance, another compromised
        service) can then run code in every process that reads a result. Use it only to
        return Python objects JSON cannot carry, on a result store nobody else can write to.

    """

    name = "pickle"

    def encode(self, result: TaskiqResult[Any]) -> bytes:
        """Pickle ``result``.

        Raises:
            ResultNotSerializableError: when the return value cannot be pickled.

        """
        # A plain TaskiqResult: a parametrised one (TaskiqResult[int]) cannot be pickled.
        plain: TaskiqResult[Any] = TaskiqResult(
            is_err=result.is_err,
            log=result.log,
            return_value=result.return_value,
            execution_time=result.execution_time,
            labels=result.labels,
            error=result.error,
        )
        try:
            return pickle.dumps(plain)
        except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
            raise ResultNotSerializableError(
                type_name=_type_name(result.return_value), serializer="pickle", reason=str(exc)
            ) from exc

    def decode(self, data: bytes | str, *, task_id: str) -> TaskiqResult[Any]:
        """Unpickle ``data`` (runs whatever code the payload names: see the class warning).

        Raises:
            ResultDecodeError: when ``data`` is not a pickled result.

        """
        if isinstance(data, str):
            raise _decode_error(task_id, "pickle", "pickled data must be bytes")
        try:
            value = pickle.loads(data)  # noqa: S301 - explicit, documented opt-in
        except Exception as exc:
            raise _decode_error(task_id, "pickle", str(exc)) from exc
        if not isinstance(value, TaskiqResult):
            raise _decode_error(task_id, "pickle", f"got {type(value).__name__}, not a result")
        return value


def make_codec(serializer: Serializer | ResultCodec = "json") -> ResultCodec:
    """The codec for ``serializer`` (``"json"``, the default, or ``"pickle"``), or a custom one.

    Raises:
        ValueError: for another name.

    """
    if serializer == "json":
        return JSONCodec()
    if serializer == "pickle":
        return PickleCodec()
    if isinstance(serializer, str):
        message = f"unknown serializer {serializer!r}: use 'json' (default) or 'pickle'"
        raise ValueError(message)  # noqa: TRY004 - a wrong value of the right type
    return serializer


def encode_result(codec: ResultCodec, result: TaskiqResult[Any]) -> bytes:
    """Encode ``result``; a result that cannot be encoded becomes a stored failure.

    Whatever the codec raises (an unserialisable return value, a label or log it cannot carry,
    a bug in a custom codec), the task is recorded as failed, never left without a result. The
    failure replaces the outcome in ``result`` itself too (``is_err`` and ``error``), so the
    middlewares that run after the save (the status middleware) record ``failure`` with the
    :class:`ResultNotSerializableError` as the error.

    Raises:
        ResultNotSerializableError: only when the codec cannot encode even a bare failure.

    """
    try:
        return codec.encode(result)
    except ResultNotSerializableError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - any encoding failure must still end the task
        error = ResultNotSerializableError(
            type_name=_type_name(result.return_value),
            serializer=codec.name,
            reason=f"{type(exc).__name__}: {exc}"[:500],
        )
    result.is_err = True
    result.error = error
    failed: TaskiqResult[Any] = TaskiqResult(
        is_err=True,
        return_value=None,
        execution_time=result.execution_time,
        labels=result.labels,
        log=result.log,
        error=error,
    )
    try:
        return codec.encode(failed)
    except Exception:  # noqa: BLE001 - the labels or log were the trouble: store without them
        logger.warning(
            "Result of a task stored without its labels and log: %s cannot encode them.",
            codec.name,
        )
        failed.labels = {}
        failed.log = None
        return codec.encode(failed)


def encode_progress(report: ProgressReport) -> bytes:
    """Encode a progress report as JSON."""
    return report.model_dump_json().encode()


def decode_progress(data: bytes | str, *, task_id: str) -> ProgressReport:
    """Decode a progress report (JSON only, whatever the result serializer).

    Raises:
        ResultDecodeError: when ``data`` is not a progress report.

    """
    try:
        return ProgressReport.model_validate_json(data)
    except ValidationError as exc:
        raise ResultDecodeError(
            what="progress", task_id=task_id, serializer="json", reason=str(exc)
        ) from exc


def decode_record(task_id: str, fields: Mapping[Any, Any]) -> TaskRecord | None:
    """Build a record from JSON-encoded field values (a Redis hash); ``None`` without a status.

    Raises:
        ResultDecodeError: when a field is not valid JSON or the record is malformed.

    """
    try:
        data = {_text(name): json.loads(value) for name, value in fields.items()}
    except ValueError as exc:
        raise ResultDecodeError(
            what="status record", task_id=task_id, serializer="json", reason=str(exc)
        ) from exc
    return parse_record(task_id, data)


def parse_record(task_id: str, data: object) -> TaskRecord | None:
    """Build a record from decoded JSON data; ``None`` when it has no status yet.

    Raises:
        ResultDecodeError: when the record is malformed.

    """
    if not isinstance(data, dict) or "status" not in data:
        return None
    try:
        return TaskRecord.model_validate({**data, "task_id": task_id})
    except ValidationError as exc:
        raise ResultDecodeError(
            what="status record", task_id=task_id, serializer="json", reason=str(exc)
        ) from exc


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _type_name(value: object) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _decode_error(task_id: str, serializer: str, reason: str) -> ResultDecodeError:
    return ResultDecodeError(what="result", task_id=task_id, serializer=serializer, reason=reason)
