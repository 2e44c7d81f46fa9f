"""The example app as real processes on a private Redis, and a real Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.fastapi.processes import api_process, worker_process
from tests.private.redis import private_redis
from tests.processes import BIN, ROOT, kill_group, spawned

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Where the tests write their screenshots: the docs' images with ``TASKIQ_KIT_SCREENSHOTS=docs``
#: (how docs/img/dashboard-*.png are refreshed), else a scratch directory, so a test run leaves
#: the checkout unchanged.
SHOTS = (
    ROOT / "docs" / "img"
    if os.environ.get("TASKIQ_KIT_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "taskiq-kit-screenshots"
)
TOKEN = "dashboard-secret"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CREDENTIALS: dict[str, Any] = {"username": "admin", "password": TOKEN, "send": "always"}
SCHEDULER_GROUP = "dashboard-browser-tests"
#: Two fast schedules beside the example's own: the test pauses one, the other keeps firing.
SCHEDULES = [
    {"id": "tick", "task": "example.add", "interval": 1, "args": [1, 1]},
    {"id": "tock", "task": "example.add", "interval": 1, "args": [2, 2]},
]


class Example:
    """The example app (uvicorn) and one ``taskiq worker`` on a private Redis."""

    def __init__(self, url: str, redis_url: str, env: dict[str, str]) -> None:
        self.url = url
        self.dashboard = f"{url}/dashboard"
        self.redis_url = redis_url
        self.env = env
        self.http = httpx.Client(base_url=url, headers=BEARER, timeout=20)
        self._worker = contextlib.ExitStack()
        self.worker: subprocess.Popen[bytes] | None = None

    def start_worker(self) -> None:
        self.worker = self._worker.enter_context(worker_process(self.env))

    def kill_worker(self) -> None:
        """SIGKILL the worker (a crash: its running task never finishes), then forget it."""
        assert self.worker is not None
        kill_group(self.worker, signal.SIGKILL)
        self.worker.wait(10)
        self._worker.close()
        self.worker = None

    def close(self) -> None:
        self._worker.close()
        self.http.close()

    @contextlib.contextmanager
    def scheduler(self) -> Iterator[subprocess.Popen[bytes]]:
        """``taskiq scheduler examples.fastapi_app.scheduler:scheduler`` for the block."""
        args = [str(BIN / "taskiq"), "scheduler", "examples.fastapi_app.scheduler:scheduler"]
        log = Path(tempfile.gettempdir()) / "kit-dashboard-scheduler.log"
        with spawned(
            "taskiq scheduler", args, self.env, stop=signal.SIGINT, log_path=log
        ) as process:
            yield process

    def crunch(self, steps: int, step_seconds: float, **body: Any) -> str:
        answer = self.http.post(
            "/crunch", json={"steps": steps, "step_seconds": step_seconds, **body}
        )
        assert answer.status_code == 202, answer.text
        task_id: str = answer.json()["task_id"]
        return task_id

    def fail(self, message: str) -> str:
        answer = self.http.post("/fail", json={"message": message})
        assert answer.status_code == 202, answer.text
        task_id: str = answer.json()["task_id"]
        return task_id

    def task(self, task_id: str) -> dict[str, Any]:
        answer = self.http.get(f"/tasks/{task_id}")
        assert answer.status_code == 200, (answer.status_code, answer.text)
        info: dict[str, Any] = answer.json()
        return info

    def wait_for(
        self, task_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not check(info := self.task(task_id)):
            assert time.monotonic() < deadline, f"task {task_id} stayed {info}"
            time.sleep(0.05)
        return info


@contextlib.contextmanager
def running_example() -> Iterator[Example]:
    with private_redis(appendonly=False) as redis:
        env = {
            "TASKIQ_KIT_BROKER_URL": redis.url,
            "EXAMPLE_API_TOKEN": TOKEN,
            "TASKIQ_KIT_SCHEDULER_REDIS_URL": redis.url,
            "TASKIQ_KIT_SCHEDULER_NAME": SCHEDULER_GROUP,
            "TASKIQ_KIT_SCHEDULER_SCHEDULES": json.dumps(SCHEDULES),
            # A task whose run never finishes (its worker crashed) is dead-lettered at once.
            "TASKIQ_KIT_MAX_DELIVERY_ATTEMPTS": "1",
        }
        with api_process(env) as url:
            example = Example(url, redis.url, env)
            try:
                example.start_worker()
                yield example
            finally:
                example.close()
