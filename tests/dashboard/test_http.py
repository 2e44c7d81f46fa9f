"""The dashboard over HTTP (httpx on ASGI, memory broker): auth, cross-site refusal, sub-paths."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, HTTPException

from taskiq_kit import KitBroker, get_status, make_broker
from taskiq_kit.dashboard import dashboard_router
from taskiq_kit.exceptions import AnonymousRouterError
from taskiq_kit.fastapi import kit_lifespan
from taskiq_kit.inspect import list_dead_letters
from tests.fastapi.app import Tasks, register_tasks
from tests.fastapi.conftest import serve
from tests.inspect.dead_letters_support import eventually, task_body

PASSWORD = "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
PAGES = ["/", "/tasks", "/task?id=nope", "/dead-letters", "/workers", "/static/dashboard.js"]


def verify_admin(authorization: Annotated[str | None, Header()] = None) -> None:
    if authorization != AUTH["Authorization"]:
        raise HTTPException(401, "who are you", headers={"WWW-Authenticate": "Basic"})


@dataclass
class Site:
    http: httpx.AsyncClient
    broker: KitBroker
    tasks: Tasks
    base: str


@asynccontextmanager
async def site_for(
    *, root_path: str = "", prefix: str = "/dashboard", **options: Any
) -> AsyncIterator[Site]:
    broker = make_broker("memory://")
    tasks = register_tasks(broker)
    app = FastAPI(lifespan=kit_lifespan(broker))
    options.setdefault("dependencies", [Depends(verify_admin)])
    app.include_router(dashboard_router(broker, prefix=prefix, **options))
    async with serve(app) as served:
        transport = httpx.ASGITransport(app=served, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Site(http, broker, tasks, root_path + prefix)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with site_for() as running:
        yield running


def token_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def delayed_task(site: Site) -> str:
    handle = await site.tasks.add.kicker().with_labels(delay=300).kiq(1, 2)
    return handle.task_id


def test_refuses_to_build_without_auth() -> None:
    broker = make_broker("memory://")
    with pytest.raises(AnonymousRouterError, match="dashboard_router") as refused:
        dashboard_router(broker)
    assert isinstance(refused.value, ValueError)
    with pytest.raises(AnonymousRouterError):
        dashboard_router(broker, dependencies=[], allow_anonymous="yes")  # type: ignore[arg-type]
    assert dashboard_router(broker, allow_anonymous=True).routes


async def test_every_route_needs_credentials(site: Site) -> None:
    task_id = await delayed_task(site)
    for path in [*PAGES, f"/live?id={task_id}"]:
        refused = await site.http.get(site.base + path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Basic"
    for action in ["abort", "rerun", "dead-letters", "schedules"]:
        refused = await site.http.post(f"{site.base}/actions/{action}", data={"task_id": task_id})
        assert refused.status_code == 401, action
    for path in PAGES:
        answer = await site.http.get(site.base + path, headers=AUTH)
        assert answer.status_code in {200, 404}, (path, answer.text[:300])
    assert (await get_status(site.broker, task_id)).value == "scheduled"


async def test_pages_send_a_strict_content_security_policy(site: Site) -> None:
    page = await site.http.get(f"{site.base}/", headers=AUTH)
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script>" not in page.text  # nothing inline: the policy would block it
    assert page.headers["cache-control"] == "no-store"


async def test_actions_refuse_cross_site_requests(site: Site) -> None:
    task_id = await delayed_task(site)
    page = await site.http.get(f"{site.base}/tasks", headers=AUTH)
    token = token_of(page)
    url = f"{site.base}/actions/abort"
    form = {"task_id": task_id, "csrf": token}
    cases: list[tuple[dict[str, str], dict[str, str], httpx.Cookies | None]] = [
        ({"task_id": task_id}, {}, None),  # no token
        ({"task_id": task_id, "csrf": "x" * 43}, {}, None),  # a wrong token
        (form, {"Sec-Fetch-Site": "cross-site"}, None),  # a form on another site
        (form, {"Sec-Fetch-Site": "same-site"}, None),  # a sibling subdomain
        (form, {"Origin": "https://evil.example"}, None),  # an older browser, other origin
        (form, {}, httpx.Cookies()),  # the token without the session's cookie
    ]
    for data, headers, cookies in cases:
        if cookies is not None:
            site.http.cookies.clear()
        refused = await site.http.post(url, data=data, headers={**AUTH, **headers})
        assert refused.status_code == 403, (data, headers)
        assert refused.text.startswith("refused:")
    assert (await get_status(site.broker, task_id)).value == "scheduled"

    page = await site.http.get(f"{site.base}/tasks", headers=AUTH)  # a new session token
    token = token_of(page)
    done = await site.http.post(
        url,
        data={"task_id": task_id, "csrf": token, "back": f"{site.base}/tasks?status=aborted"},
        headers={**AUTH, "Sec-Fetch-Site": "same-origin", "Origin": "http://test"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"{site.base}/tasks?status=aborted"
    assert (await get_status(site.broker, task_id)).value == "aborted"
    shown = await site.http.get(done.headers["location"], headers=AUTH)
    assert "aborted before start" in shown.text  # the outcome, shown once on the next page


async def test_script_actions_send_the_token_in_a_header(site: Site) -> None:
    task_id = await delayed_task(site)
    token = token_of(await site.http.get(f"{site.base}/", headers=AUTH))
    answer = await site.http.post(
        f"{site.base}/actions/abort",
        data={"task_id": task_id},
        headers={**AUTH, "X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert answer.json() == {
        "ok": True,
        "message": f"task {task_id}: aborted before start (now aborted)",
        "task_id": task_id,
        "outcome": "aborted_before_start",
        "status": "aborted",
    }
    again = await site.http.post(
        f"{site.base}/actions/abort",
        data={"task_id": task_id},
        headers={**AUTH, "X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert again.status_code == 409
    assert again.json()["outcome"] == "already_aborted"


async def test_redirects_stay_inside_the_dashboard(site: Site) -> None:
    task_id = await delayed_task(site)
    token = token_of(await site.http.get(f"{site.base}/", headers=AUTH))
    answer = await site.http.post(
        f"{site.base}/actions/abort",
        data={"task_id": task_id, "csrf": token, "back": "https://evil.example/"},
        headers=AUTH,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{site.base}/tasks"
    for back in (f"{site.base}/\t/evil.example", "//evil.example/", f"{site.base}/\\evil"):
        task_id = await delayed_task(site)
        answer = await site.http.post(
            f"{site.base}/actions/abort",
            data={"task_id": task_id, "csrf": token, "back": back},
            headers=AUTH,
        )
        assert answer.headers["location"] == f"{site.base}/tasks", back


@pytest.mark.parametrize(
    ("root_path", "prefix"), [("", "/dashboard"), ("/gateway", "/ops/tasks"), ("/proxy/a", "")]
)
async def test_links_follow_the_sub_path(root_path: str, prefix: str) -> None:
    async with site_for(root_path=root_path, prefix=prefix) as site:
        base = root_path + prefix
        page = await site.http.get(f"{base}/tasks", headers=AUTH)
        assert page.status_code == 200, page.text[:500]
        links = [
            link
            for link in re.findall(r'(?:href|src|action)="([^"]+)"', page.text)
            if not link.startswith("#")
        ]
        assert len(links) > 5
        assert all(link.startswith(base + "/") for link in links), links
        assert f'data-base="{base}"' in page.text
        cookie = page.headers["set-cookie"]
        assert f"Path={base}/" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        asset = re.search(r'src="([^"]+dashboard\.js[^"]*)"', page.text)
        assert asset
        script = await site.http.get(asset.group(1), headers=AUTH)
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "EventSource" in script.text


async def test_traceback_hidden_unless_enabled() -> None:
    for expose in (False, True):
        async with site_for(expose_tracebacks=expose) as site:
            handle = await site.tasks.boom.kiq("it broke")
            await handle.wait_result(timeout=5)
            page = await site.http.get(
                f"{site.base}/task", params={"id": handle.task_id}, headers=AUTH
            )
            assert page.status_code == 200
            assert "ValueError</strong>: it broke" in page.text
            assert ("Traceback (most recent call last)" in page.text) is expose
            assert ("Tracebacks are hidden" in page.text) is not expose


async def test_live_stream_follows_progress_to_the_end(site: Site) -> None:
    handle = await site.tasks.stepper.kiq(4, 0.05)
    events: list[tuple[str, str]] = []
    name = ""
    async with site.http.stream(
        "GET", f"{site.base}/live", params={"id": handle.task_id}, headers=AUTH
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
    names = [event for event, _ in events]
    assert names[-2:] == ["status", "done"]
    assert '"fraction": 1.0' in events[-3][1]
    assert '"status": "success"' in events[-2][1]
    assert names.count("progress") >= 2
    await asyncio.sleep(0)


async def test_dead_letters_listed_deleted_and_replayed(site: Site) -> None:
    for _ in range(3):
        await site.broker.kick(task_body(site.broker, "t.unknown"))
    await eventually(
        lambda: _total(site.broker, 3), timeout=5, what="three dead letters of an unknown task"
    )
    page = await site.http.get(f"{site.base}/dead-letters", headers=AUTH)
    ids = re.findall(r'name="ids" value="([^"]+)"', page.text)
    assert len(ids) == 3
    assert page.text.count("unknown task &#39;t.unknown&#39;") == 3
    token = token_of(page)
    url = f"{site.base}/actions/dead-letters"

    deleted = await site.http.post(
        url, data={"csrf": token, "op": "delete", "ids": ids[:2]}, headers=AUTH
    )
    assert deleted.status_code == 303
    assert await _total(site.broker, 1)
    shown = await site.http.get(deleted.headers["location"], headers=AUTH)
    assert "deleted 2 dead letter(s)" in shown.text
    assert re.findall(r'name="ids" value="([^"]+)"', shown.text) == ids[2:]

    again = await site.http.post(url, data={"csrf": token, "row_delete": ids[0]}, headers=AUTH)
    assert "no longer there" in (await site.http.get(again.headers["location"], headers=AUTH)).text
    nothing = await site.http.post(url, data={"csrf": token, "op": "replay"}, headers=AUTH)
    assert (
        "no dead letter selected"
        in (await site.http.get(nothing.headers["location"], headers=AUTH)).text
    )

    replayed = await site.http.post(url, data={"csrf": token, "op": "replay_all"}, headers=AUTH)
    assert (
        "replayed 1 dead letter(s)"
        in (await site.http.get(replayed.headers["location"], headers=AUTH)).text
    )
    # Still unknown to the worker: back in the dead letters, and then purged.
    await eventually(lambda: _total(site.broker, 1), timeout=5, what="the replayed letter back")
    await site.http.post(url, data={"csrf": token, "op": "purge"}, headers=AUTH)
    assert await _total(site.broker, 0)


async def _total(broker: KitBroker, expected: int) -> bool:
    return (await list_dead_letters(broker)).total == expected


async def test_run_again_sends_the_same_arguments(site: Site) -> None:
    first = await site.tasks.add.kiq(20, 22)
    assert (await first.wait_result(timeout=5)).return_value == 42
    page = await site.http.get(f"{site.base}/task", params={"id": first.task_id}, headers=AUTH)
    assert '<pre id="args">[\n  20,\n  22\n]</pre>' in page.text
    answer = await site.http.post(
        f"{site.base}/actions/rerun",
        data={"csrf": token_of(page), "task_id": first.task_id},
        headers=AUTH,
    )
    assert answer.status_code == 303
    new_id = answer.headers["location"].rsplit("id=", 1)[1]
    assert new_id != first.task_id
    backend = site.broker.result_backend
    await eventually(lambda: backend.is_result_ready(new_id), timeout=5, what="the new run")
    result = await backend.get_result(new_id)
    assert result.return_value == 42
    shown = await site.http.get(answer.headers["location"], headers=AUTH)
    assert f"sent t.add again as {new_id}" in shown.text


def row_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-task-id="([^"]+)"', page.text)


async def test_tasks_page_filters_pages_and_refuses_bad_queries(site: Site) -> None:
    added = [await site.tasks.add.kiq(n, n) for n in range(5)]
    failed = [await site.tasks.boom.kiq(f"no {n}") for n in range(2)]
    for handle in added + failed:
        await handle.wait_result(timeout=5)
    newest_first = [handle.task_id for handle in reversed(added + failed)]
    url = f"{site.base}/tasks"

    everything = await site.http.get(url, headers=AUTH)
    assert row_ids(everything) == newest_first
    assert 'value="failure" checked' not in everything.text
    failures = await site.http.get(url, params={"status": "failure"}, headers=AUTH)
    assert row_ids(failures) == [handle.task_id for handle in reversed(failed)]
    both = await site.http.get(
        url, params=[("status", "failure"), ("status", "success")], headers=AUTH
    )
    assert row_ids(both) == newest_first
    by_name = await site.http.get(url, params={"task_name": "t.add"}, headers=AUTH)
    assert row_ids(by_name) == [handle.task_id for handle in reversed(added)]
    one = await site.http.get(url, params={"search": added[3].task_id}, headers=AUTH)
    assert row_ids(one) == [added[3].task_id]
    none = await site.http.get(url, params={"until": "2000-01-01T00:00"}, headers=AUTH)
    assert row_ids(none) == []
    assert 'id="no-tasks"' in none.text

    walked: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    for _ in range(5):
        page = await site.http.get(url, params=params, headers=AUTH)
        walked += row_ids(page)
        following = re.search(r'<a rel="next" href="[^"?]+\?([^"]+)"', page.text)
        if following is None:
            break
        params = dict(httpx.QueryParams(following.group(1).replace("&amp;", "&")))
        assert params["limit"] == "3"
    assert walked == newest_first

    for bad in ({"cursor": "nonsense"}, {"status": "done"}, {"since": "yesterday"}, {"limit": "0"}):
        refused = await site.http.get(url, params=bad, headers=AUTH)
        assert refused.status_code == 400, bad
        assert "Cannot list: " in refused.text


async def test_live_stream_of_several_tasks_ends_when_all_are_final(site: Site) -> None:
    slow = await site.tasks.stepper.kiq(6, 0.1)
    quick = await site.tasks.add.kiq(1, 1)
    async with site.http.stream(
        "GET",
        f"{site.base}/live",
        params=[("id", slow.task_id), ("id", quick.task_id), ("id", "no-such-task")],
        headers=AUTH,
    ) as stream:
        text = "".join([chunk async for chunk in stream.aiter_text()])
    statuses = re.findall(r"event: status\ndata: (.*)\n", text)
    assert f'{{"task_id": "{quick.task_id}", "status": "success"}}' in statuses
    assert f'{{"task_id": "{slow.task_id}", "status": "success"}}' in statuses
    assert '{"task_id": "no-such-task", "status": null}' in statuses
    assert text.count("event: progress") >= 3
    assert text.rstrip().endswith('event: done\ndata: {"finished": true}')
