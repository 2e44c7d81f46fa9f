"""Run the example app as real processes: ``uvicorn`` for the API, ``taskiq worker`` for tasks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def process(name: str, args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in its own session; on exit stop it (SIGINT, then SIGKILL) and show its log on errors."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            log.seek(0)
            output = log.read().decode(errors="replace")
            if "Traceback" in output or "ERROR" in output:
                sys.stderr.write(f"--- {name} output ---\n{output[-6000:]}\n")


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
    with process("uvicorn", args, env) as proc:
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
    with process("taskiq worker", args, env) as proc:
        yield proc
