"""A private Redis Sentinel set on free loopback ports, in temp dirs: 1 master, 1 replica, 3 Sentinels.

The Sentinels watch the master as service :data:`SERVICE` with a quorum of 2, a 1 s
``down-after-milliseconds`` and a 3 s ``failover-timeout``, so a killed master is replaced by its
replica within seconds. A watchdog process kills everything and removes the dirs should the test
session die without cleaning up.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.private.redis_cluster import ServerProcess, Watchdog

SERVICE = "kitmaster"
#: A replica that (re)joins is synced at once (Redis 7 waits 5 s for more replicas by default).
_QUICK_SYNC = ("--repl-diskless-sync-delay", "0")


class PrivateRedisSentinel:
    """A master, its replica and three Sentinels, owned by a test."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kit-redis-sentinel-"))
        self.master = ServerProcess(self.root, "master")
        self.replica = ServerProcess(self.root, "replica")
        self.sentinels = [ServerProcess(self.root, f"sentinel{index}") for index in range(3)]
        self._watchdog: Watchdog | None = None

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,127.0.0.1:<s3>/kitmaster/0``."""
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    @property
    def servers(self) -> list[ServerProcess]:
        """The two data servers (the original master first)."""
        return [self.master, self.replica]

    def start(self, timeout: float = 30.0) -> None:
        """Start master, replica and Sentinels; wait until the replica is in sync and watched."""
        self.master.launch("--save", "", "--appendonly", "no", *_QUICK_SYNC)
        self.replica.launch(
            "--save",
            "",
            "--appendonly",
            "no",
            *_QUICK_SYNC,
            "--replicaof",
            "127.0.0.1",
            str(self.master.port),
        )
        for sentinel in self.sentinels:
            config = sentinel.dir / "sentinel.conf"
            config.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            sentinel.launch("--sentinel", config=config)
        self._watchdog = Watchdog(self.root, [*self.servers, *self.sentinels])
        for process in [*self.servers, *self.sentinels]:
            process.wait_answering()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._in_sync() and all(self._watching(s) for s in self.sentinels):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinel set in {self.root} was not ready within {timeout} s")

    def _in_sync(self) -> bool:
        with self.replica.client() as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _watching(self, sentinel: ServerProcess) -> bool:
        with contextlib.suppress(redis.RedisError), sentinel.client() as client:
            fields = client.sentinel_master(SERVICE)
            # Both the replica and the two other Sentinels are known: a failover can happen.
            return int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2
        return False

    def master_port(self) -> int:
        """The master's port as the first Sentinel that answers sees it now."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError), sentinel.client() as client:
                _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
                return int(port)
        raise RuntimeError("no Sentinel answers")

    def current_master(self) -> ServerProcess:
        """The data server the Sentinels name as master."""
        port = self.master_port()
        return next(server for server in self.servers if server.port == port)

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the Sentinels name another master than ``old_port`` and it accepts writes.

        Returns:
            The seconds it took.

        """
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            with contextlib.suppress(redis.RedisError, RuntimeError):
                port = self.master_port()
                if port != old_port:
                    with redis.Redis(port=port, socket_timeout=2) as client:
                        if client.info("replication").get("role") == "master":
                            return time.monotonic() - start
            time.sleep(0.05)
        raise RuntimeError(f"no replica was promoted within {timeout} s")

    def close(self) -> None:
        """Kill every process and remove the dirs."""
        for process in [*self.sentinels, *self.servers]:
            process.kill()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_redis_sentinel() -> Iterator[PrivateRedisSentinel]:
    """A started :class:`PrivateRedisSentinel`, removed when the block ends."""
    sentinel = PrivateRedisSentinel()
    try:
        sentinel.start()
        yield sentinel
    finally:
        sentinel.close()
