"""Polling and SSE parsing for the FastAPI tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.fastapi.app import AUTH


async def wait_status(
    http: httpx.AsyncClient, task_id: str, wanted: set[str], timeout: float = 10.0
) -> list[str]:
    """Poll ``GET /tasks/{id}`` until its status is in ``wanted``; return the statuses seen."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await http.get(f"/tasks/{task_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        status = response.json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in wanted:
            return seen
        assert loop.time() < deadline, f"task {task_id} stayed {seen}"
        await asyncio.sleep(0.02)


def parse_sse(text: str) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """Events (name, JSON data) of an SSE body, and the number of comment lines."""
    events: list[tuple[str, dict[str, Any]]] = []
    comments = 0
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events, comments
