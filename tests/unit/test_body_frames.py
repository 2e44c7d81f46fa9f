"""How a published body is cut into AMQP body frames (taskiq_kit.rabbit.confirmed.body_frames)."""

from __future__ import annotations

import pytest

from taskiq_kit.rabbit.confirmed import body_frames


@pytest.mark.parametrize(
    ("size", "max_size", "lengths"),
    [
        (0, 100, []),
        (1, 100, [1]),
        (99, 100, [99]),
        (100, 100, [100]),
        (250, 100, [100, 100, 50]),
        (300, 100, [100, 100, 100]),
        # A broker without a frame size limit (frame_max 0): aiormq's size is then negative.
        (250, -8, [250]),
        (250, 0, [250]),
    ],
)
def test_body_frames(size: int, max_size: int, lengths: list[int]) -> None:
    body = bytes(n % 251 for n in range(size))
    frames = body_frames(body, max_size)
    assert [len(frame.value) for frame in frames] == lengths
    assert b"".join(frame.value for frame in frames) == body
