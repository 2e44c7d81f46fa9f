"""The kit's own confirmed publish is used only with the aiormq releases it was tested against."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

from taskiq_kit.rabbit import confirmed


@pytest.mark.parametrize(
    ("aiormq", "python", "expected"),
    [
        ("7.0.0", (3, 11), True),
        ("7.2.4", (3, 12), True),
        ("7.3.0", (3, 11), False),  # newer than tested: aiormq's public basic_publish
        ("8.0.1", (3, 13), False),
        ("6.8.1", (3, 11), False),
        ("7.2.4", (3, 10), False),
        ("7.x", (3, 11), False),
    ],
)
def test_fast_path_only_within_the_tested_bound(
    aiormq: str, python: tuple[int, int], expected: bool
) -> None:
    assert confirmed.fast_path_supported(aiormq, python) is expected


def test_the_installed_aiormq_is_judged_by_the_bound() -> None:
    assert (
        confirmed.fast_path_supported(version("aiormq"), sys.version_info[:2])
        == confirmed.SUPPORTED
    )
