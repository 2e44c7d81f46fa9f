"""Flow control's worker-side warnings never quote a task's arguments (see taskiq_kit.redaction)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from taskiq.kicker import AsyncKicker

from taskiq_kit import MemoryBroker, make_broker
from taskiq_kit.flow import RateLimit

SECRET = "4111-1111-secret"


def _returns_the_card(card: dict[str, str], **_: Any) -> object:
    return card  # not a str, int or float: refused, with the card in hand


def _parses_the_number(card: dict[str, str], **_: Any) -> object:
    return int(card["number"])  # ValueError quoting the number


@pytest.mark.parametrize("key", [_returns_the_card, _parses_the_number])
async def test_a_failing_key_function_is_logged_without_the_arguments(
    key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker("memory://")
    assert isinstance(broker, MemoryBroker)
    ran = asyncio.Event()

    @broker.task(rate_limit=RateLimit(100, per=1.0, key=key))
    async def charge(card: dict[str, str]) -> None:
        ran.set()

    caplog.set_level(logging.DEBUG)
    await broker.startup()
    try:
        # taskiq's own kicker (its scheduler's): the worker computes the keys, and its key
        # function fails there; the limit then applies to the whole task.
        kicker: AsyncKicker[Any, Any] = AsyncKicker(
            task_name=charge.task_name, broker=broker, labels=dict(charge.labels)
        )
        await kicker.kiq(card={"number": SECRET})
        await asyncio.wait_for(ran.wait(), 10)
    finally:
        await broker.shutdown()
    warned = [r for r in caplog.records if r.name == "taskiq_kit.flow"]
    assert warned, "the key function's failure is not reported"
    # (taskiq's own DEBUG lines show arguments; the kit's lines, at any level, must not.)
    kits = [r.getMessage() for r in caplog.records if r.name.startswith("taskiq_kit")]
    assert [line for line in kits if SECRET in line] == []
