"""``examples/e03_scheduler.py`` runs under ``taskiq scheduler`` and manages dynamic schedules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from taskiq_kit.scheduler import SchedulerKeys

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.timeout(40)
def test_example_scheduler(redis_url: str, unique_name: Callable[[str], str]) -> None:
    keys = SchedulerKeys(name=unique_name("example"))
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TASKIQ_KIT_BROKER_URL": "memory://",
        "TASKIQ_KIT_SCHEDULER_REDIS_URL": redis_url,
        "TASKIQ_KIT_SCHEDULER_NAME": keys.name,
    }
    process = subprocess.Popen(
        [str(BIN / "taskiq"), "scheduler", "examples.e03_scheduler:scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(4)
        manage = [str(BIN / "python"), "examples/e03_scheduler.py", "add"]
        added = subprocess.run(manage, cwd=ROOT, env=env, capture_output=True, check=True)
        assert b"dynamic: every 3 s -> examples.heartbeat [on]" in added.stdout
        time.sleep(6.5)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=15)
        with Redis.from_url(redis_url) as client:
            client.delete(*keys.all())
    text = output.decode()
    assert "heartbeat (every 5 s)" in text
    assert "heartbeat (dynamic)" in text
    assert "Scheduler shut down" in text
