"""The overview's chart: tasks kicked per status over the last hour, as stacked bars in SVG."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.inspect.api import count_tasks
from taskiq_kit.results.record import TaskStatus

#: Stacking order, bottom first.
ORDER = (
    TaskStatus.SUCCESS,
    TaskStatus.FAILURE,
    TaskStatus.ABORTED,
    TaskStatus.EXPIRED,
    TaskStatus.STARTED,
    TaskStatus.RETRYING,
    TaskStatus.SCHEDULED,
    TaskStatus.PENDING,
)
WIDTH, HEIGHT, AXIS = 600, 160, 18


@dataclass(frozen=True)
class Bar:
    """One rectangle: a status's count in one time slot."""

    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


@dataclass
class Chart:
    """What the template draws: rectangles, time labels, and the totals per status."""

    bars: list[Bar] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    peak: int = 0
    width: int = WIDTH
    height: int = HEIGHT + AXIS


async def last_hour(broker: AsyncBroker, *, slots: int = 12, now: float | None = None) -> Chart:
    """Count the tasks kicked in each of ``slots`` slices of the last hour, per status."""
    end = time.time() if now is None else now
    span = 3600 / slots
    starts = [end - 3600 + i * span for i in range(slots)]
    counts = await asyncio.gather(
        *(count_tasks(broker, since=start, until=start + span) for start in starts)
    )
    chart = Chart(totals={status.value: 0 for status in ORDER})
    chart.peak = max((sum(slot.values()) for slot in counts), default=0)
    scale = HEIGHT / chart.peak if chart.peak else 0.0
    slot_width = WIDTH / slots
    for index, (start, slot) in enumerate(zip(starts, counts, strict=True)):
        y = float(HEIGHT)
        x = index * slot_width + 2
        for status in ORDER:
            count = slot.get(status, 0)
            chart.totals[status.value] += count
            if not count:
                continue
            height = count * scale
            y -= height
            minute = time.strftime("%H:%M", time.gmtime(start))
            chart.bars.append(
                Bar(
                    x,
                    y,
                    slot_width - 4,
                    height,
                    status.value,
                    f"{count} {status.value} from {minute}",
                )
            )
        if index % 3 == 0:
            chart.labels.append((x, time.strftime("%H:%M", time.gmtime(start))))
    return chart
