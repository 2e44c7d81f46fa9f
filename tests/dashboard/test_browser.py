"""The dashboard in a real Chromium, against the example app served by uvicorn with a real worker."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.dashboard.browser import SHOTS, Example

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Write ``docs/img/dashboard-<name>.png`` (the docs show them)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"dashboard-{name}.png"), full_page=full_page)


def progress_of(page: Page) -> float | None:
    """The progress bar's value, or ``None`` when there is none (or the page is reloading)."""
    try:
        value = page.evaluate(
            "() => { const bar = document.querySelector('progress[data-role=bar]');"
            " return bar ? bar.value : null; }"
        )
    except PlaywrightError as exc:
        assert "context was destroyed" in str(exc)  # the page reloads once the task is final
        page.wait_for_load_state()
        return None
    return None if value is None else float(value)


def assert_refused(page: Page, url: str) -> None:
    """The browser shows nothing of ``url``: a 401 page, or Chromium's refused-credentials error."""
    try:
        response = page.goto(url)
    except PlaywrightError as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    else:
        assert response is not None
        assert response.status == 401, url
        assert "Overview" not in response.text()
    answer = page.request.get(url)  # the same request, status shown
    assert answer.status == 401, url
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_without_credentials_the_page_is_refused(browser: Browser, example: Example) -> None:
    wrong = {"username": "admin", "password": "wrong", "send": "always"}
    for credentials in (None, wrong):
        context = browser.new_context(http_credentials=credentials)  # type: ignore[arg-type]
        try:
            page = context.new_page()
            for path in ("/", "/tasks", "/dead-letters", "/static/dashboard.js"):
                assert_refused(page, example.dashboard + path)
            refused = page.request.post(
                f"{example.dashboard}/actions/abort", form={"task_id": "x"}
            )
            assert refused.status == 401
        finally:
            context.close()


def test_task_page_progress_bar_moves_live_to_100(page: Page, example: Example) -> None:
    task_id = example.crunch(steps=8, step_seconds=0.4)
    page.goto(f"{example.dashboard}/task?id={task_id}")
    expect(page.locator("h1 [data-role=status]")).to_have_text("started")  # pending, then live
    seen: list[float] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        value = progress_of(page)
        if value is None:  # final: the page reloaded without a bar
            break
        if not seen or value != seen[-1]:
            seen.append(value)
        if value == 50:
            shot(page, "task-running")
        time.sleep(0.03)
    assert seen == sorted(seen), seen
    assert len([value for value in seen if 0 < value < 100]) >= 3, seen  # it moved, step by step
    expect(page.locator("h1 [data-role=status]")).to_have_text("success")
    expect(page.locator(".muted", has_text="Last progress")).to_contain_text("100 %")
    assert seen[-1] == 100 or "100 %" in page.content()
    expect(page.locator("#result")).to_contain_text('"steps": 8')
    expect(page.locator(".timeline li")).to_have_count(3)  # pending, started, success
    shot(page, "task")


def test_abort_on_the_task_page_stops_the_running_task(page: Page, example: Example) -> None:
    task_id = example.crunch(steps=100, step_seconds=0.1)
    page.goto(f"{example.dashboard}/task?id={task_id}")
    badge = page.locator("h1 [data-role=status]")
    expect(badge).to_have_text("started")
    page.wait_for_function("() => document.querySelector('progress').value >= 5")
    clicked = time.monotonic()
    page.get_by_role("button", name=f"Abort task {task_id}").click()
    expect(badge).to_have_text("aborted", timeout=1000)
    assert time.monotonic() - clicked < 1.0
    info = example.task(task_id)
    assert info["status"] == "aborted"
    assert info["progress"]["fraction"] < 0.5
    expect(page.locator(".timeline")).to_contain_text("abort requested")
    # The worker stopped it: its result says so, and nothing reports progress any more.
    result = example.http.get(f"/tasks/{task_id}/result").json()
    assert result["error"]["type"].endswith("TaskAbortedError"), result
    before = info["progress"]["updated_at"]
    follow = example.crunch(steps=1, step_seconds=0)  # the worker is free and runs the next task
    example.wait_for(follow, lambda found: found["status"] == "success")
    assert example.task(task_id)["progress"]["updated_at"] == before
