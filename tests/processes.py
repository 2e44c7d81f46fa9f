"""Real processes for the tests: ``taskiq worker``, ``uvicorn``, run in their own session."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group of ``process`` (e.g. the taskiq parent and its workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@contextlib.contextmanager
def spawned(
    name: str,
    args: list[str],
    env: dict[str, str] | None = None,
    *,
    stop: signal.Signals = signal.SIGKILL,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in its own session until the block ends, then stop its whole group.

    ``stop`` is sent first (SIGINT for a graceful stop); SIGKILL follows after 10 s. The output
    goes to ``log_path`` (a temporary file by default) and is shown on stderr when it holds a
    traceback or an error, to explain a failing test.
    """
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log_path.open("w+b") if log_path is not None else tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            args,
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
                kill_group(process, stop)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    kill_group(process, signal.SIGKILL)
                    process.wait(5)
            log.seek(0)
            output = log.read().decode(errors="replace")
            if "Traceback" in output or "ERROR" in output:
                sys.stderr.write(f"--- {name} output ---\n{output[-6000:]}\n")


def taskiq_worker(
    target: str, *args: str, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``taskiq worker <target> *args`` as a real process (killed at the end of the block)."""
    return spawned("taskiq worker", [str(BIN / "taskiq"), "worker", target, *args], env)
