"""The router serves every id the kit accepts at kick, percent-encoded in the path.

``/`` inside an id arrives decoded at the router (``%2F`` -> ``/``), so ``GET /tasks/a%2Fresult``
(the status of task ``a/result``) and ``GET /tasks/a/result`` (the result of task ``a``) must be
told apart by the raw path.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.fastapi.app import AUTH
from tests.fastapi.conftest import Api
from tests.fastapi.helpers import parse_sse, wait_status


def at(task_id: str, tail: str = "") -> str:
    return f"/tasks/{quote(task_id, safe='')}{tail}"


async def kick_add(api: Api, task_id: str, a: int, b: int) -> None:
    handle = await api.tasks.add.kicker().with_task_id(task_id).kiq(a, b)
    assert (await handle.wait_result(timeout=10, check_interval=0.02)).return_value == a + b


@pytest.mark.parametrize("task_id", ["order/1", "tenant:42/order#7?x=%20", "a.b~c|d", "..."])
async def test_every_route_serves_ids_with_reserved_characters(api: Api, task_id: str) -> None:
    await kick_add(api, task_id, 1, 2)
    await wait_status(api.http, quote(task_id, safe=""), {"success"})

    info = await api.http.get(at(task_id), headers=AUTH)
    assert info.status_code == 200, info.text
    assert info.json()["task_id"] == task_id
    result = await api.http.get(at(task_id, "/result"), headers=AUTH)
    assert result.status_code == 200, result.text
    assert result.json()["value"] == 3
    stream = await api.http.get(at(task_id, "/events"), headers=AUTH)
    events, _ = parse_sse(stream.text)
    assert events[-1][0] == "status"
    assert events[-1][1]["task_id"] == task_id
    aborted = await api.http.delete(at(task_id), headers=AUTH)
    assert aborted.status_code == 409
    assert aborted.json()["outcome"] == "already_finished"


async def test_an_id_ending_like_a_route_is_told_apart_by_its_encoding(api: Api) -> None:
    for task_id, a in (("a", 1), ("a/result", 10), ("a/events", 100)):
        await kick_add(api, task_id, a, a)

    # Percent-encoded: the whole id. Plain slashes: a route of the shorter id.
    status = await api.http.get(at("a/result"), headers=AUTH)
    assert status.status_code == 200
    assert status.json()["task_id"] == "a/result"
    assert status.json()["status"] == "success"
    assert (await api.http.get(at("a/events"), headers=AUTH)).json()["task_id"] == "a/events"
    assert (await api.http.get("/tasks/a/result", headers=AUTH)).json()["value"] == 2
    assert (await api.http.get(at("a/result", "/result"), headers=AUTH)).json()["value"] == 20
    # Without encoding, an id whose slashes end in no route name still reaches its status.
    await kick_add(api, "order/9", 4, 5)
    assert (await api.http.get("/tasks/order/9", headers=AUTH)).json()["task_id"] == "order/9"


# ("." and "..", refused too, never reach the router: clients resolve them as path segments.)
@pytest.mark.parametrize("task_id", ["a b", "{tag}", "caf\u00e9", "x" * 201, "tab\t"])
async def test_ids_the_kit_refuses_get_422(api: Api, task_id: str) -> None:
    for method, tail in (("GET", ""), ("GET", "/result"), ("GET", "/events"), ("DELETE", "")):
        response = await api.http.request(method, at(task_id, tail), headers=AUTH)
        assert response.status_code == 422, (method, tail, response.text)
