"""Run ``taskiq worker tests.redis.worker_app:broker`` as a real process, in its own group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = Path(sys.executable).parent / "taskiq"


@contextlib.contextmanager
def worker_process(
    queue: str, url: str, *args: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start one worker process (its own session, so signals reach the whole group)."""
    environment = {
        **os.environ,
        "KIT_TEST_REDIS_URL": url,
        "KIT_TEST_QUEUE": queue,
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(TASKIQ), "worker", "tests.redis.worker_app:broker", "--workers", "1", *args],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                kill_group(process, signal.SIGKILL)
            process.wait(10)
            log.seek(0)
            output = log.read().decode(errors="replace")
            if "Traceback" in output:
                sys.stderr.write(f"--- worker output ---\n{output[-5000:]}\n")


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the worker's process group (the taskiq parent and its worker child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


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
