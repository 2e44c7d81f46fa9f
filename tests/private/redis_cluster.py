"""A private 3-master Redis Cluster on free loopback ports, in temp dirs, that tests may use freely.

Three ``redis-server --cluster-enabled yes`` processes (own ports and data dirs) are joined with
``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``; the cluster is ready once
every node reports ``cluster_state:ok``. A watchdog process kills the servers and removes their
dirs should the test session die without cleaning up.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.private.redis import free_port

#: Kills the listed processes and removes the dir once the session's end of the pipe closes.
_WATCHDOG = """
import os, shutil, signal, sys
pids = sys.argv[2:] + sys.stdin.read().split()
for pid in pids:
    try:
        os.kill(int(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass
shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (the port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20_000, 55_000)
        if _free(port) and _free(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class ServerProcess:
    """One ``redis-server`` (or Sentinel) process with its own port and dir under ``root``."""

    def __init__(self, root: Path, name: str, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []
        #: The watchdog that must also kill a relaunched process.
        self.watchdog: Watchdog | None = None

    def launch(self, *args: str, config: Path | None = None) -> None:
        """Start ``redis-server [config]`` with the port, bind and dir options, then ``args``."""
        command = ["redis-server", *([str(config)] if config else [])]
        command += ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir)]
        command += ["--logfile", str(self.dir / "server.log"), *args]
        self._command = command
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def client(self) -> redis.Redis:
        """A synchronous client of this process (text responses)."""
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def wait_answering(self, timeout: float = 10.0) -> None:
        """Wait until the process answers ``PING``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} on port {self.port} exited: see {self.dir}")
            with contextlib.suppress(redis.RedisError), self.client() as client:
                if client.ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} on port {self.port} did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL the process (no shutdown, no last write to disk)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def relaunch(self) -> None:
        """Start the process again with the command of its last :meth:`launch` (same port, dir)."""
        self.process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if self.watchdog is not None:
            self.watchdog.also(self.process.pid)

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return None if self.process is None else self.process.pid


class Watchdog:
    """Kills ``processes`` and removes ``root`` should the session end without :meth:`close`."""

    def __init__(self, root: Path, processes: list[ServerProcess]) -> None:
        pids = [str(process.pid) for process in processes if process.pid is not None]
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(root), *pids],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for process in processes:
            process.watchdog = self

    def also(self, pid: int) -> None:
        """Kill ``pid`` too (a process started again)."""
        if self._process.stdin is not None:
            self._process.stdin.write(f"{pid}\n".encode())
            self._process.stdin.flush()

    def close(self) -> None:
        """Stop watching (the caller cleans up itself)."""
        self._process.kill()
        self._process.wait(10)
        if self._process.stdin is not None:
            self._process.stdin.close()


class PrivateRedisCluster:
    """Three Redis Cluster masters (no replicas) owned by the test session.

    Args:
        size: how many masters (at least 3, what ``redis-cli --cluster create`` asks for).

    """

    def __init__(self, *, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kit-redis-cluster-"))
        self.nodes = [
            ServerProcess(self.root, f"node{index}", port=free_cluster_port())
            for index in range(size)
        ]
        self._watchdog: Watchdog | None = None

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/``."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{hosts}/"

    def start(self, timeout: float = 30.0) -> None:
        """Start the masters, create the cluster, wait until every node says it is ok."""
        for node in self.nodes:
            node.launch(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.dir / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
                "--appendonly",
                "no",
                "--save",
                "",
            )
        self._watchdog = Watchdog(self.root, self.nodes)
        for node in self.nodes:
            node.wait_answering()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout[-2000:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._state_ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the cluster in {self.root} did not become ok within {timeout} s")

    @staticmethod
    def _state_ok(node: ServerProcess) -> bool:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
        text = info if isinstance(info, str) else str(info)
        return "cluster_state:ok" in text

    def close(self) -> None:
        """Kill every node and remove the dirs."""
        for node in self.nodes:
            node.kill()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_redis_cluster() -> Iterator[PrivateRedisCluster]:
    """A started :class:`PrivateRedisCluster`, removed when the block ends."""
    cluster = PrivateRedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
