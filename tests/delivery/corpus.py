"""A corpus of malformed messages, one or more per class of fault, each carrying a secret marker."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

#: Text put in every body (arguments, label values, raw bytes): it must never reach a log line at
#: WARNING or above, nor a dead-letter reason.
SECRET = "SECRET-" + uuid.uuid4().hex


def taskiq_body(task_name: str = "echo", **fields: Any) -> dict[str, Any]:
    """A valid taskiq message for ``task_name``, with ``fields`` replaced."""
    body: dict[str, Any] = {
        "task_id": uuid.uuid4().hex,
        "task_name": task_name,
        "labels": {"note": SECRET},
        "labels_types": None,
        "args": [SECRET],
        "kwargs": {"token": SECRET},
    }
    body.update(fields)
    return body


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


def malformed() -> list[tuple[str, bytes]]:
    """(class, body) of messages taskiq cannot run; each must be dead-lettered with a reason."""
    long_name = "no-such-task-" + "x" * 300 + SECRET
    return [
        ("not UTF-8", b"\xff\xfe" + SECRET.encode()),
        ("not JSON", f"{{{SECRET} not json".encode()),
        ("JSON, not an object", _json([SECRET, 1, 2])),
        ("missing fields", _json({"args": [SECRET]})),
        ("args not a list", _json(taskiq_body(args=SECRET))),
        ("kwargs not an object", _json(taskiq_body(kwargs=[SECRET]))),
        ("labels not an object", _json(taskiq_body(labels=[SECRET]))),
        ("task_id not text", _json(taskiq_body(task_id=12345))),
        ("task_id unusable", _json(taskiq_body(task_id="a b {" + SECRET))),
        (
            "int label not an int",
            _json(taskiq_body(labels={"delay": "abc" + SECRET}, labels_types={"delay": 2})),
        ),
        (
            "unknown label type",
            _json(taskiq_body(labels={"odd": SECRET}, labels_types={"odd": 99})),
        ),
        (
            "bad base64",
            _json(taskiq_body(labels={"blob": SECRET + "a"}, labels_types={"blob": 6})),
        ),
        ("unknown ack_type", _json(taskiq_body(labels={"ack_type": "bogus" + SECRET}))),
        (
            "ack_type typed int",
            _json(taskiq_body(labels={"ack_type": SECRET}, labels_types={"ack_type": 2})),
        ),
        ("timeout not a number", _json(taskiq_body(labels={"timeout": SECRET}))),
        ("unknown task", _json(taskiq_body(task_name=long_name))),
        ("labels_types not ints", _json(taskiq_body(labels_types={"note": SECRET}))),
    ]


def valid(count: int) -> list[bytes]:
    """Bodies taskiq runs: ``echo`` with the secret as arguments; a bytes label; a bad int argument."""
    bodies = [_json(taskiq_body(args=[n, SECRET])) for n in range(count)]
    blob = base64.b64encode(SECRET.encode()).decode()
    bodies.append(
        _json(taskiq_body(args=[-1, SECRET], labels={"blob": blob}, labels_types={"blob": 6}))
    )
    # An argument taskiq cannot convert to its annotation: it logs a warning and passes it as is.
    bodies.append(_json(taskiq_body(args=[SECRET, SECRET])))
    return bodies
