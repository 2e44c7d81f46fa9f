"""The JSON codec and progress validation, without a server."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import msgpack
import pytest
from taskiq.result import TaskiqResult

from taskiq_kit import TaskiqKitError
from taskiq_kit.exceptions import (
    InvalidProgressError,
    ResultDecodeError,
    ResultNotSerializableError,
)
from taskiq_kit.results.codec import JSONCodec, encode_result, make_codec
from taskiq_kit.results.progress import make_report


class Color(Enum):
    RED = "red"


def test_json_codec_converts_common_types() -> None:
    codec = JSONCodec()
    uid = uuid.UUID(int=1)
    value = {
        "t": (1, 2),
        "s": {3},
        "u": uid,
        "c": Color.RED,
        "d": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    result = TaskiqResult[Any](is_err=False, return_value=value, execution_time=1, labels={"x": 1})
    decoded = codec.decode(codec.encode(result), task_id="t")
    assert decoded.return_value == {
        "t": [1, 2],
        "s": [3],
        "u": str(uid),
        "c": "red",
        "d": "2026-01-01T00:00:00Z",
    }
    assert decoded.labels == {"x": 1}


def test_unserialisable_value_becomes_a_failure_in_place() -> None:
    result = TaskiqResult[Any](is_err=False, return_value=lambda: 1, execution_time=1)
    codec = make_codec("json")
    stored = codec.decode(encode_result(codec, result), task_id="t")
    assert result.is_err
    assert isinstance(result.error, ResultNotSerializableError)
    assert isinstance(result.error, TypeError)
    assert stored.is_err
    assert stored.return_value is None
    assert stored.error is not None
    assert "return value of type function is not JSON-serialisable" in str(stored.error)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04K\x01.",
        b"not json",
        b"[1, 2]",
        b'{"format": "other"}',
        b'{"format": "taskiq-kit/1"}',
    ],
)
def test_decode_refuses_foreign_data(data: bytes) -> None:
    with pytest.raises(ResultDecodeError) as caught:
        JSONCodec().decode(data, task_id="t1")
    assert isinstance(caught.value, TaskiqKitError)
    assert "'t1'" in str(caught.value)


def test_unknown_serializer() -> None:
    name: Any = "yaml"
    with pytest.raises(ValueError, match="unknown serializer 'yaml'"):
        make_codec(name)


@pytest.mark.parametrize("fraction", [-0.1, 1.01, math.nan, math.inf, True, "0.5", None])
def test_progress_fraction_is_validated(fraction: Any) -> None:
    with pytest.raises(InvalidProgressError, match="invalid progress fraction") as caught:
        make_report(fraction)
    assert isinstance(caught.value, ValueError)


def test_progress_meta_must_be_json() -> None:
    with pytest.raises(InvalidProgressError, match="not JSON-serialisable"):
        make_report(0.5, meta={"f": object()})
    report = make_report(1, message="done", meta={"when": datetime(2026, 1, 1)})
    assert report.fraction == 1.0
    assert report.meta == {"when": "2026-01-01T00:00:00"}


def test_pickle_codec_is_an_explicit_opt_in() -> None:
    codec = make_codec("pickle")
    result = TaskiqResult[Any](is_err=False, return_value={1, 2}, execution_time=1)
    assert codec.decode(codec.encode(result), task_id="t").return_value == {1, 2}
    local = TaskiqResult[Any](is_err=False, return_value=lambda: 1, execution_time=1)
    stored = codec.decode(encode_result(codec, local), task_id="t")
    assert stored.is_err
    assert "is not pickle-serialisable" in str(stored.error)


def test_bytes_labels_round_trip_as_bytes() -> None:
    # What taskiq-pipelines keeps in a label: a msgpack payload, not text.
    pipeline = msgpack.packb({"steps": [{"task": "a", "kwargs": {"x": b"\xff"}}]})
    with pytest.raises(UnicodeDecodeError):
        pipeline.decode()
    labels = {"pipeline": pipeline, "n": 1, "flag": True, "text": "t", "empty": b""}
    result = TaskiqResult[Any](is_err=False, return_value=1, execution_time=1, labels=labels)
    for codec in (make_codec("json"), make_codec("pickle")):
        decoded = codec.decode(encode_result(codec, result), task_id="t")
        assert decoded.labels == labels
        assert not decoded.is_err


def test_labels_of_any_type_are_storable() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    circular: list[object] = []
    circular.append(circular)
    labels = {
        "nested": {"raw": b"\xff\x00"},
        "obj": Opaque(),
        "when": datetime(2026, 1, 1),
        "loop": circular,
    }
    result = TaskiqResult[Any](is_err=False, return_value=1, execution_time=1, labels=labels)
    codec = make_codec("json")
    decoded = codec.decode(encode_result(codec, result), task_id="t")
    assert not decoded.is_err
    assert decoded.labels == {
        "nested": {"raw": "_wA="},  # nested bytes: base64 text (only top-level values round-trip)
        "obj": "opaque",
        "when": "2026-01-01T00:00:00",
        "loop": "<unstorable list>",
    }


class LabelHatingCodec(JSONCodec):
    """A custom codec with a bug: it cannot encode any label (as the JSON codec could not)."""

    def encode(self, result: TaskiqResult[Any]) -> bytes:
        if result.labels:
            b"\xff".decode()
        return super().encode(result)


def test_any_codec_failure_becomes_a_stored_failure() -> None:
    codec = LabelHatingCodec()
    result = TaskiqResult[Any](is_err=False, return_value=1, execution_time=1, labels={"a": 1})
    stored = codec.decode(encode_result(codec, result), task_id="t")
    assert result.is_err
    assert isinstance(result.error, ResultNotSerializableError)
    assert stored.is_err
    assert stored.labels == {}
    assert "UnicodeDecodeError" in str(stored.error)
