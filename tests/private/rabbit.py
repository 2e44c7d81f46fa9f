"""A private RabbitMQ node on free loopback ports, with its own data dir, that tests may break.

The node is a second Erlang node beside the shared one (its own node name, AMQP and
distribution ports, data, logs, cookie and an empty plugin list, so it never competes for the
shared node's management or Prometheus ports). It runs as a child process of the test session;
a watchdog process stops it and removes its data should the session die without cleaning up.

``TASKIQ_KIT_TEST_RABBITMQ_SCRIPTS`` names the directory holding the real ``rabbitmq-server``
and ``rabbitmqctl`` scripts when they are not in ``/usr/lib/rabbitmq/bin`` or on ``PATH``
(Debian's ``/usr/sbin`` wrappers switch to the ``rabbitmq`` user and its settings: not usable).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.private.redis import free_port

#: Kills the node's process group and removes its dir once the test session's end of the pipe
#: closes (the session ended, however it ended), unless the session did it first.
_WATCHDOG = """
import os, shutil, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except ProcessLookupError:
    pass
shutil.rmtree(sys.argv[2], ignore_errors=True)
"""


def scripts_dir() -> Path:
    """Where the real ``rabbitmq-server`` and ``rabbitmqctl`` scripts are."""
    configured = os.environ.get("TASKIQ_KIT_TEST_RABBITMQ_SCRIPTS")
    if configured:
        return Path(configured)
    debian = Path("/usr/lib/rabbitmq/bin")
    if (debian / "rabbitmq-server").exists():
        return debian
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError(
            "rabbitmq-server is not installed (set TASKIQ_KIT_TEST_RABBITMQ_SCRIPTS)"
        )
    return Path(found).resolve().parent


class PrivateRabbit:
    """One RabbitMQ node owned by the test session: stop and start its app, alarm it, close it.

    Args:
        start_timeout: seconds the node may take to boot.
        cookie: the Erlang cookie (nodes of one cluster share it); by default the node makes
            its own.
        config: more ``rabbitmq.conf`` lines, e.g. ``{"consumer_timeout": "5000"}``.
        advanced: settings of the ``rabbit`` application that ``rabbitmq.conf`` cannot set,
            written to ``advanced.config`` as Erlang terms, e.g. ``{"channel_tick_interval":
            "1000"}`` (RabbitMQ checks ``consumer_timeout`` on each channel tick: once a minute
            by default).

    """

    def __init__(
        self,
        *,
        start_timeout: float = 90.0,
        cookie: str | None = None,
        config: dict[str, str] | None = None,
        advanced: dict[str, str] | None = None,
    ) -> None:
        self.node = f"kit-{uuid.uuid4().hex[:12]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="kit-rabbit-"))
        self.scripts = scripts_dir()
        self.process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        if cookie is not None:
            cookie_file = self.dir / ".erlang.cookie"
            cookie_file.write_text(cookie)
            cookie_file.chmod(0o400)  # Erlang refuses a cookie file others may read
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"
            "vm_memory_high_watermark.relative = 0.4\n"
            "disk_free_limit.absolute = 50MB\n"
            + "".join(f"{key} = {value}\n" for key, value in (config or {}).items())
        )
        if advanced:
            terms = ", ".join(f"{{{key}, {value}}}" for key, value in advanced.items())
            (self.dir / "advanced.config").write_text(f"[{{rabbit, [{terms}]}}].\n")
        self.env = {
            **os.environ,
            # The node and its CLI calls share this HOME, hence one private Erlang cookie.
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_BASE": str(self.dir),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Boot the node and wait until its app runs (:meth:`launch`, then :meth:`wait_started`).

        Raises:
            RuntimeError: when it exits or does not start in time (with its console output).

        """
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Start the node's process without waiting for it (nodes of a cluster boot together)."""
        log = (self.dir / "console.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.scripts / "rabbitmq-server")],
            env=self.env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the shell, erl, beam and their helpers
        )
        log.close()
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(self.process.pid), str(self.dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_started(self) -> None:
        """Wait until the launched node's app runs.

        Raises:
            RuntimeError: when it exits or does not start in time (with its console output).

        """
        assert self.process is not None, "launch() the node first"
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                # Fails at once while the node is not reachable yet; waits for the app after.
                self.ctl("await_startup", timeout=max(1.0, deadline - time.monotonic()))
                return
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
                if self.process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                console = (self.dir / "console.log").read_text(errors="replace")[-3000:]
                self.close()
                raise RuntimeError(
                    f"private RabbitMQ node {self.node} did not start ({exc}):\n{console}"
                ) from exc

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> *args`` and return its output."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"private RabbitMQ node {self.node} is not running")
        done = subprocess.run(
            [str(self.scripts / "rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self.env,
            cwd=self.dir,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node stays up): connections drop."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start the RabbitMQ application again and wait until it runs."""
        self.ctl("start_app")
        self.ctl("await_startup", timeout=self.start_timeout)

    def set_memory_watermark(self, fraction: float) -> None:
        """``set_vm_memory_high_watermark``: 0 raises the memory alarm (publishers block)."""
        self.ctl("set_vm_memory_high_watermark", str(fraction))

    def close_connection(self, name: str) -> None:
        """Close (server side) the one connection whose client named it ``name``.

        One ``rabbitmqctl eval`` finds and closes it: a CLI call takes a second or more on a
        busy machine, and tests close connections against a clock.

        Raises:
            AssertionError: when not exactly one connection had that name.

        """
        literal = name.replace("\\", "\\\\").replace('"', '\\"')
        closed = self.ctl(
            "eval",
            "Ps = [P || P <- rabbit_networking:connections(), lists:member("
            f'{{<<"connection_name">>, longstr, <<"{literal}"/utf8>>}}, proplists:get_value('
            "client_properties, rabbit_networking:connection_info(P, [client_properties]), []))],"
            ' rabbit_networking:close_connections(Ps, "test: simulated network failure"),'
            " length(Ps).",
        )
        assert closed.strip() == "1", f"expected one connection named {name!r}, closed {closed}"

    def close(self) -> None:
        """Stop the node (cleanly if it answers, else SIGKILL) and remove its data dir."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    [str(self.scripts / "rabbitmqctl"), "-n", self.node, "-q", "stop"],
                    check=False,
                    env=self.env,
                    cwd=self.dir,
                    capture_output=True,
                    timeout=30,
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)
            # The whole group: erl_child_setup and friends outlive a SIGKILLed beam otherwise.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait(10)
            if watchdog.stdin is not None:
                watchdog.stdin.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def private_rabbit_node(
    *, config: dict[str, str] | None = None, advanced: dict[str, str] | None = None
) -> Iterator[PrivateRabbit]:
    """A started :class:`PrivateRabbit`, stopped and removed when the block ends.

    ``config`` and ``advanced``: see :class:`PrivateRabbit`.
    """
    node = PrivateRabbit(config=config, advanced=advanced)
    try:
        node.start()
        yield node
    finally:
        node.close()
