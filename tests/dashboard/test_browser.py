"""The dashboard in a real Chromium, against the example app served by uvicorn with a real worker."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from taskiq_kit.scheduler.models import fire_task_id
from tests.dashboard.browser import SCHEDULER_GROUP, SHOTS, Example

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Write ``dashboard-<name>.png`` into ``SHOTS`` (the docs' images with TASKIQ_KIT_SCREENSHOTS=docs)."""
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
        # (A firing the replica was too busy to send within its 1 s grace is skipped.)
        assert sum(fired(example, "tock", second) for second in window) >= 3
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


def row_of(page: Page, task_id: str) -> Locator:
    return page.locator(f'#tasks tr[data-task-id="{task_id}"]')


def test_tasks_table_moves_progress_live_and_aborts_a_running_task(
    page: Page, example: Example
) -> None:
    finishing = example.crunch(steps=10, step_seconds=0.3)
    running = example.crunch(steps=100, step_seconds=0.3)
    page.goto(
        f"{example.dashboard}/tasks?status=pending&status=scheduled&status=started"
        "&task_name=example.crunch"
    )
    done, stuck = row_of(page, finishing), row_of(page, running)
    expect(done).to_be_visible()
    expect(stuck).to_be_visible()
    seen: list[float] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen.append(float(done.locator("progress").evaluate("bar => bar.value")))
        if done.get_attribute("data-status") == "success":
            break
        time.sleep(0.05)
    expect(done.locator("[data-role=status]")).to_have_text("success")
    moving = sorted(set(seen))
    assert seen == sorted(seen), seen
    assert moving[-1] == 100, moving
    assert len([value for value in moving if 0 < value < 100]) >= 3, moving
    shot(page, "tasks")

    expect(stuck.locator("[data-role=status]")).to_have_text("started")
    clicked = time.monotonic()
    stuck.get_by_role("button", name=f"Abort task {running}").click()
    expect(stuck.locator("[data-role=status]")).to_have_text("aborted", timeout=1000)
    assert time.monotonic() - clicked < 1.0
    expect(stuck.get_by_role("button", name=f"Abort task {running}")).to_have_count(0)
    expect(page.locator("#flash")).to_contain_text("aborted while running")
    # The worker really stopped it: the result says so and the worker runs nothing any more.
    result = example.http.get(f"/tasks/{running}/result").json()
    assert result["error"]["type"].endswith("TaskAbortedError"), result
    assert example.task(running)["progress"]["fraction"] < 0.5
    page.goto(f"{example.dashboard}/workers")
    running_cell = page.locator("tr[data-worker] td[data-label=Running]")
    expect(running_cell).to_have_count(1)
    # As of the worker's next heartbeat (every 10 s); the page re-reads every 5 s.
    expect(running_cell).to_have_text(re.compile(r"^\s*0\b"), timeout=25_000)


def test_filters_and_pagination_change_the_rows(page: Page, example: Example) -> None:
    marker = uuid.uuid4().hex[:8]
    failed = [example.fail(f"{marker} {n}") for n in range(4)]
    succeeded = [example.crunch(steps=1, step_seconds=0) for _ in range(5)]
    for task_id in failed + succeeded:
        example.wait_for(task_id, lambda info: info["is_final"])
    ours = set(failed + succeeded)

    page.goto(f"{example.dashboard}/tasks")
    page.get_by_label("failure").check()
    page.get_by_label("Task name").fill("example.fail")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#tasks tbody tr")
    statuses = rows.evaluate_all("rows => rows.map(row => row.dataset.status)")
    assert set(statuses) == {"failure"}
    shown = set(rows.evaluate_all("rows => rows.map(row => row.dataset.taskId)"))
    assert set(failed) <= shown
    assert not shown & set(succeeded)

    page.goto(f"{example.dashboard}/tasks?search={succeeded[2]}")
    assert rows.evaluate_all("rows => rows.map(row => row.dataset.taskId)") == [succeeded[2]]

    # Pages of 3, newest first: every task shows once, in kick order, across the pages.
    page.goto(f"{example.dashboard}/tasks?limit=3&status=success&status=failure")
    walked: list[str] = []
    for _ in range(50):
        ids = rows.evaluate_all("rows => rows.map(row => row.dataset.taskId)")
        assert 1 <= len(ids) <= 3
        walked += ids
        following = page.get_by_role("link", name="Next page")
        if not following.count() or ours <= set(walked):
            break
        following.click()
        page.wait_for_load_state()
    assert len(walked) == len(set(walked)), walked
    mine = [task_id for task_id in walked if task_id in ours]
    assert mine == list(reversed(failed + succeeded))

    # A time range that ends before these kicks shows none of them.
    page.goto(f"{example.dashboard}/tasks")
    page.get_by_label("until (UTC)").fill("2000-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#no-tasks")).to_be_visible()


def test_poison_message_shows_under_dead_letters_and_replay_runs_it(
    page: Page, example: Example
) -> None:
    task_id = example.crunch(steps=12, step_seconds=0.25)
    example.wait_for(task_id, lambda info: info["status"] == "started")
    example.kill_worker()  # the task "crashed its worker": its run never finishes
    example.start_worker()  # gets the message again, and dead-letters it (1 delivery allowed)
    page.goto(f"{example.dashboard}/dead-letters")
    letter = page.locator(f'tr[data-task-id="{task_id}"]')
    deadline = time.monotonic() + 30
    while not letter.count():
        assert time.monotonic() < deadline, "the poison message was not dead-lettered"
        time.sleep(0.5)
        page.reload()
    expect(letter.locator("[data-role=reason]")).to_contain_text("without finishing")
    shot(page, "dead-letters")

    page.once("dialog", lambda dialog: dialog.accept())
    letter.get_by_role("button", name="Replay").click()
    expect(page.locator(".notice").first).to_contain_text("replayed 1 dead letter")
    expect(letter).to_have_count(0)
    info = example.wait_for(task_id, lambda found: found["status"] == "success", timeout=30)
    assert info["progress"]["fraction"] == 1.0


def test_overview_workers_and_phone_width(page: Page, example: Example) -> None:
    page.goto(f"{example.dashboard}/")
    queue = page.locator("tr[data-queue]").first
    expect(queue).to_be_visible()
    # The worker killed above stays listed until it misses a few heartbeats (10 s each).
    assert int(page.locator("[data-role=worker-count]").inner_text()) in {1, 2}
    assert page.locator("figure.chart rect").count() > 0  # the tasks of the tests above
    assert int(page.locator("[data-total=success]").inner_text()) >= 5
    # Live: a new task shows in the chart's totals without a reload.
    before = int(page.locator("[data-total=failure]").inner_text())
    failed = example.fail("for the overview")
    example.wait_for(failed, lambda info: info["is_final"])
    expect(page.locator("[data-total=failure]")).to_have_text(str(before + 1), timeout=15_000)
    shot(page, "overview")
    page.goto(f"{example.dashboard}/workers")
    workers = page.locator("tr[data-worker]")
    expect(workers.first).to_be_visible()
    pids = workers.locator("td[data-label=PID]").all_inner_texts()
    assert all(pid.strip().isdigit() for pid in pids), pids
    expect(workers.locator("td[data-label=Queues]").first).to_have_text("taskiq")
    shot(page, "workers")

    # Phone width: nothing overflows sideways, and every control is reachable by keyboard.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{example.dashboard}/tasks")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, width
    shot(page, "phone", full_page=False)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    focused: set[str] = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        focused.add(page.evaluate("() => document.activeElement.textContent.trim()"))
    assert {"Overview", "Tasks", "Dead letters", "Workers", "Filter"} <= focused, focused
