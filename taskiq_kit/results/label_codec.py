"""How a result's labels are stored in a JSON document: every label taskiq allows, bytes as bytes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

#: The key of ``{BYTES_MARK: "<base64>"}``, how a bytes label is stored in a JSON document.
BYTES_MARK = "taskiq-kit:bytes"


def encode_labels(labels: Mapping[str, Any]) -> dict[str, Any]:
    """Labels as JSON data; never fails.

    A bytes label (taskiq sends bytes labels as such; msgpack and CBOR payloads, as
    taskiq-pipelines keeps them, are not text) becomes ``{BYTES_MARK: "<base64>"}`` and comes
    back as bytes from :func:`decode_labels`. Values JSON cannot carry otherwise are stored as
    their ``str()`` (or, if even that fails, as a placeholder naming their type).
    """
    encoded: dict[str, Any] = {}
    for name, value in labels.items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            encoded[str(name)] = {BYTES_MARK: base64.b64encode(value).decode("ascii")}
        else:
            encoded[str(name)] = _jsonable(value)
    return encoded


def _jsonable(value: object) -> object:
    try:
        return to_jsonable_python(value, fallback=str, bytes_mode="base64")
    except Exception:  # noqa: BLE001 - a circular structure, a __str__ that raises: keep the rest
        return f"<unstorable {type(value).__name__}>"


def decode_labels(labels: object) -> dict[str, Any]:
    """Labels stored by :func:`encode_labels`, bytes labels as bytes again."""
    if not isinstance(labels, dict):
        return {}
    return {name: _decode_label(value) for name, value in labels.items()}


def _decode_label(value: object) -> object:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BYTES_MARK), str):
        try:
            return base64.b64decode(value[BYTES_MARK], validate=True)
        except binascii.Error:
            return value
    return value
