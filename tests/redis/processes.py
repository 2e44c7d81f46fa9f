"""Run ``taskiq worker tests.redis.worker_app:broker`` as a real process, in its own group."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.processes import kill_group, taskiq_worker

__all__ = ["kill_group", "rss_bytes", "worker_child_pid", "worker_process"]


@contextlib.contextmanager
def worker_process(
    queue: str, url: str, *args: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start one worker process (its own session, so signals reach the whole group)."""
    environment = {"KIT_TEST_REDIS_URL": url, "KIT_TEST_QUEUE": queue, **env}
    with taskiq_worker(
        "tests.redis.worker_app:broker", "--workers", "1", *args, env=environment
    ) as process:
        yield process


def worker_child_pid(process: subprocess.Popen[bytes]) -> int:
    """The pid of the worker process taskiq started (the child of ``process``)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert children, "the taskiq worker has no child process yet"
    return int(children[0])


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")
