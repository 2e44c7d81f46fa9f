"""Fixtures of the browser tests: the example app on a private Redis, and Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, CREDENTIALS, Example, running_example


@pytest.fixture(scope="module")
def example() -> Iterator[Example]:
    with running_example() as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page of a fresh browser context that sends the example's admin credentials."""
    context = browser.new_context(
        http_credentials=CREDENTIALS,  # type: ignore[typeddict-item]
        viewport={"width": 1280, "height": 860},
    )
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
