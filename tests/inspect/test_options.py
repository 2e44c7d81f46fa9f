"""The inspect options of make_broker are checked when the broker is built."""

from __future__ import annotations

from typing import Any

import pytest

from taskiq_kit import make_broker
from taskiq_kit.exceptions import InvalidOptionError


def test_inspect_options_reach_the_store_and_the_broker() -> None:
    def keep_none(name: str, args: object, kwargs: object) -> None:
        return None

    broker = make_broker(
        "memory://", record_args=keep_none, record_args_limit=64, worker_heartbeat=2
    )
    assert broker.result_backend.record_args is keep_none
    assert broker.result_backend.lifecycle.record_args_limit == 64
    assert broker.worker_heartbeat == 2.0


@pytest.mark.parametrize(
    ("option", "value"),
    [("record_args", "yes"), ("record_args_limit", 8), ("worker_heartbeat", 0)],
)
def test_bad_inspect_options_are_refused(option: str, value: Any) -> None:
    options: dict[str, Any] = {option: value}
    with pytest.raises(InvalidOptionError, match=option):
        make_broker("memory://", **options)
