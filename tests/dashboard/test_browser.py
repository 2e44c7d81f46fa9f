"""The dashboard in a real Chromium, against the example app served by uvicorn with a real worker."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from taskiq_kit.scheduler.models import fire_task_id
from tests.dashboard.browser import SCHEDULER_GROUP, SHOTS, Example

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
        if "context was destroyed" not in str(exc):  # the page reloads once the task is final
            raise
        page.wait_for_load_state()
        return None
    return None if value is None else float(value)


def assert_refused(page: Page, url: str) -> None:
    """The browser shows nothing of ``url``: a 401 page, or Chromium's refused-credentials error."""
    try:
        response = page.goto(url)
    except PlaywrightError as exc:
        if "ERR_INVALID_AUTH_CREDENTIALS" not in str(exc):  # Chromium's way to say 401 here
            raise
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
            refused = page.request.post(f"{example.dashboard}/actions/abort", form={"task_id": "x"})
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


def fired(example: Example, schedule_id: str, instant: int) -> bool:
    """Whether ``schedule_id`` fired at the grid instant ``instant`` (its task id is known)."""
    task_id = fire_task_id(SCHEDULER_GROUP, schedule_id, float(instant))
    return example.http.get(f"/tasks/{task_id}").status_code == 200


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def test_pause_on_a_schedule_stops_its_firings(page: Page, example: Example) -> None:
    with example.scheduler():
        page.goto(f"{example.dashboard}/schedules")
        tick = page.locator("tr[data-schedule=tick]")
        expect(tick.locator("[data-role=state]")).to_have_text("active")

        def both_fired_lately() -> bool:
            second = math.floor(time.time()) - 1
            return fired(example, "tick", second) and fired(example, "tock", second)

        wait_until(both_fired_lately, 20, "tick and tock fire every second")
        page.once("dialog", lambda dialog: dialog.accept())
        tick.get_by_role("button", name="Pause").click()
        expect(tick.locator("[data-role=state]")).to_have_text("paused")
        expect(page.locator(".notice").first).to_contain_text("paused tick")
        paused_at = time.time()
        # The replica applies it within its refresh (1 s); from then on, tick stays silent
        # while tock, the same kind of schedule on the same replica, fires on every second.
        window = range(math.ceil(paused_at + 2.5), math.ceil(paused_at + 2.5) + 4)
        wait_until(lambda: fired(example, "tock", window[-1]), 15, "tock goes on")
        assert [fired(example, "tock", second) for second in window] == [True] * 4
        assert [fired(example, "tick", second) for second in window] == [False] * 4
        shot(page, "schedules")

        with page.expect_navigation():
            tick.get_by_role("button", name="Run now").click()
        notice = page.locator(".notice").first
        expect(notice).to_contain_text("sent tick now as task")
        run_id = notice.inner_text().rsplit(" ", 1)[-1]
        example.wait_for(run_id, lambda info: info["status"] == "success")

        tick.get_by_role("button", name="Resume").click()
        expect(tick.locator("[data-role=state]")).to_have_text("active")
        resumed = math.ceil(time.time() + 2.5)
        wait_until(lambda: fired(example, "tick", resumed), 15, "tick fires again once resumed")
