"""A debounced kick that fails to send leaves the window's earlier kick to run."""

from __future__ import annotations

import pytest

from taskiq_kit import TaskStatus, get_task_record
from taskiq_kit.exceptions import InvalidDelayError
from tests.inspect.conftest import MakeBroker


async def test_a_debounced_kick_that_fails_does_not_supersede_the_one_before(
    make_kit: MakeBroker,
) -> None:
    broker = await make_kit()
    ran: list[int] = []

    @broker.task(task_name="debounce.save", debounce=0.3)
    async def save(doc: int) -> None:
        ran.append(doc)

    first = await save.kiq(5)
    # The next kick of the window is refused as it is sent (here: an eta that cannot be read).
    with pytest.raises(InvalidDelayError):
        await save.kicker().with_labels(eta="not a time").kiq(5)
    await first.wait_result(timeout=10)
    record = await get_task_record(broker, first.task_id)
    assert record.status is TaskStatus.SUCCESS, record.reason
    assert ran == [5]
    assert broker.flow.superseded == 0
