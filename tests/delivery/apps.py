"""The broker of the fault tests, built the same way in the worker process and in the test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from taskiq_kit import KitBroker, make_broker

ROOT = Path(__file__).resolve().parents[2]
TASKIQ = str(Path(sys.executable).with_name("taskiq"))


def build_broker(url: str, result_url: str, name: str, **options: Any) -> KitBroker:
    """A broker on ``url`` with its own queue (and exchange) ``name``, results in ``result_url``.

    Redis workers give a dead worker's messages to a live one after 2 s of silence.
    """
    if url.startswith("redis"):
        options.setdefault("idle_timeout", 2.0)
        options.setdefault("queue_name", name)
    else:
        options.setdefault("exchange", name)
        options.setdefault("queue_name", name)
    return make_broker(url, result_url=result_url, result_options={"prefix": name}, **options)


def start_worker(
    url: str, result_url: str, name: str, log: Path, *args: str
) -> subprocess.Popen[bytes]:
    """``taskiq worker tests.delivery.worker_app:broker`` (one child) in its own session."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIT_FAULT_BROKER_URL": url,
        "KIT_FAULT_RESULT_URL": result_url,
        "KIT_FAULT_NAME": name,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [TASKIQ, "worker", "tests.delivery.worker_app:broker", "--workers", "1", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Kill the worker's whole process group and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def child_pid(process: subprocess.Popen[bytes]) -> int | None:
    """The pid of the worker process taskiq started (the child of ``process``), if any."""
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    try:
        children = path.read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None
