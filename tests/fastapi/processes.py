"""Run the example app as real processes: ``uvicorn`` for the API, ``taskiq worker`` for tasks."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx

from tests.processes import BIN, spawned


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def api_process(env: dict[str, str]) -> Iterator[str]:
    """``uvicorn examples.fastapi_app.api:app`` on a free port; yields its base URL once it answers."""
    port = free_port()
    args = [
        str(BIN / "uvicorn"),
        "examples.fastapi_app.api:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with spawned("uvicorn", args, env, stop=signal.SIGINT) as proc:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "uvicorn exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "uvicorn did not answer in 20 s"
            time.sleep(0.1)
        yield base


@contextlib.contextmanager
def worker_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``taskiq worker examples.fastapi_app.tasks:broker`` (one worker process)."""
    args = [str(BIN / "taskiq"), "worker", "examples.fastapi_app.tasks:broker", "--workers", "1"]
    with spawned("taskiq worker", args, env, stop=signal.SIGINT) as proc:
        yield proc
