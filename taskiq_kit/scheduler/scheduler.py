"""``KitScheduler``: a ``TaskiqScheduler`` that is safe to run as several replicas, to the second.

How it fits ``taskiq scheduler module:scheduler``: taskiq's CLI loop wakes once a second and
reads its sources once a minute, and every process it runs fires every schedule. The kit does
not use that loop for its own schedules. :meth:`KitScheduler.startup` (called by the CLI) starts
a loop of its own that:

1. takes or renews the leader lease in Redis every ``lease / 3`` seconds (followers retry as
   soon as the lease may have expired, so a dead leader is replaced within ``lease`` seconds);
2. as leader, sleeps until the next firing instant (not to a second boundary), claims the
   firing in Redis with a fenced Lua script, and kicks the task through the broker with a
   task id derived from (group, schedule, instant), so a re-sent firing has the same id.

With ``kick_ahead > 0`` each firing is kicked that many seconds early with an ``eta`` label of
the firing instant: the kit's brokers then deliver it on the instant, independent of this loop.
Schedules from other taskiq sources passed in ``sources`` still run through taskiq's own loop,
but only the leader sends them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskiq.schedule_sources import LabelScheduleSource
from taskiq.scheduler.scheduler import TaskiqScheduler

from taskiq_kit._compat import require
from taskiq_kit.scheduler.config import (
    SchedulerSettings,
    load_schedules,
    merge_schedules,
    schedules_from_labels,
)
from taskiq_kit.scheduler.keys import DEFAULT_NAME, DEFAULT_PREFIX, SchedulerKeys
from taskiq_kit.scheduler.models import Schedule
from taskiq_kit.scheduler.runner import ReplicaRunner
from taskiq_kit.scheduler.store import RedisScheduleStore

if TYPE_CHECKING:
    from taskiq.abc.broker import AsyncBroker
    from taskiq.abc.schedule_source import ScheduleSource
    from taskiq.scheduler.scheduled_task import ScheduledTask

    from taskiq_kit.redis.connect import RedisClient

_redis = require("redis.asyncio", extra="scheduler", feature="the replica-safe scheduler")

from taskiq_kit.redis.connect import close_client, make_client  # noqa: E402 - after the extra check

logger = logging.getLogger("taskiq_kit.scheduler")

#: Signals that stop ``taskiq scheduler`` through a clean shutdown (3.11's ``asyncio.run`` already
#: turns Ctrl-C into one).
_STOP_SIGNALS = (
    (signal.SIGTERM,) if sys.version_info >= (3, 11) else (signal.SIGTERM, signal.SIGINT)
)


class KitScheduler(TaskiqScheduler):
    """Fires schedules exactly once per instant, however many replicas run.

    Args:
        broker: the broker tasks are kicked through (a kit broker, so ``delay``, ``expires``,
            status and abort apply to scheduled tasks).
        redis_url: the Redis server replicas coordinate through.
        schedules: schedules given in Python.
        config: a TOML or YAML schedule file, read now (errors raise at import time).
        name: the scheduler group; replicas with one name share one leader.
        prefix: first part of every Redis key.
        lease: seconds the leader's lease lasts; a dead leader is replaced within this time.
        grace: seconds a firing may be late and still count as on time rather than missed.
        refresh: seconds between checks of the dynamic schedule store (and between a follower's
            attempts to take the lease).
        kick_ahead: kick each firing this many seconds early with an ``eta`` of its instant.
        send_timeout: seconds one kick may take; a kick that fails or times out is re-sent
            (same task id) every ``lease`` seconds for up to 5 minutes.
        use_labels: also fire taskiq ``schedule=[...]`` task labels.
        sources: other taskiq schedule sources, run by taskiq's loop, sent by the leader only.

    """

    def __init__(
        self,
        broker: AsyncBroker,
        *,
        redis_url: str,
        schedules: Iterable[Schedule] = (),
        config: str | Path | None = None,
        name: str = DEFAULT_NAME,
        prefix: str = DEFAULT_PREFIX,
        lease: float = 5.0,
        grace: float = 1.0,
        refresh: float = 1.0,
        kick_ahead: float = 0.0,
        send_timeout: float = 10.0,
        use_labels: bool = True,
        sources: list[ScheduleSource] | None = None,
    ) -> None:
        super().__init__(broker, list(sources or []))
        if use_labels and any(isinstance(source, LabelScheduleSource) for source in self.sources):
            raise ValueError(
                "KitScheduler fires task labels itself (use_labels=True): remove "
                "LabelScheduleSource from sources, or every labelled schedule fires twice"
            )
        if lease < 0.5 or grace < 0 or refresh <= 0 or kick_ahead < 0 or send_timeout <= 0:
            raise ValueError(
                "need lease >= 0.5, grace >= 0, refresh > 0, kick_ahead >= 0 and send_timeout > 0"
            )
        static = list(load_schedules(config)) if config is not None else []
        static.extend(schedules)
        self.static_schedules: list[Schedule] = merge_schedules(static, source="KitScheduler")
        self.redis_url = redis_url
        self.keys = SchedulerKeys(name=name, prefix=prefix)
        self.lease, self.grace, self.refresh = lease, grace, refresh
        self.kick_ahead, self.send_timeout = kick_ahead, send_timeout
        self.use_labels = use_labels
        self._labels_read = False
        self._client: RedisClient | None = None
        self._runner: ReplicaRunner | None = None
        self._sigterm_handled = False

    @classmethod
    def from_settings(
        cls, broker: AsyncBroker, settings: SchedulerSettings | None = None, **options: Any
    ) -> KitScheduler:
        """Build a scheduler from :class:`SchedulerSettings` (by default read from the environment).

        ``schedules=[...]`` in ``options`` are added to those of the settings.

        Raises:
            ScheduleConfigError: for invalid schedules in the settings or the file they name.

        """
        settings = settings or SchedulerSettings()
        extra: Iterable[Schedule] = options.pop("schedules", ())
        return cls(
            broker,
            redis_url=settings.redis_url.get_secret_value(),
            schedules=[*settings.load(), *extra],
            name=settings.name,
            lease=settings.lease,
            grace=settings.grace,
            refresh=settings.refresh,
            **options,
        )

    @property
    def is_leader(self) -> bool:
        """Whether this replica currently leads its group (and fires)."""
        return self._runner is not None and self._runner.is_leader

    @property
    def schedules(self) -> list[Schedule]:
        """Schedules the leader fires from (static, labels and dynamic); empty on followers."""
        return [] if self._runner is None else list(self._runner.schedules.values())

    @property
    def version(self) -> int | None:
        """The group's schedule version this replica fires by (``None``: not leading yet).

        Changes of the dynamic store and pauses or resumes bump it; the leader re-reads the
        schedules within ``refresh`` seconds of a change.
        """
        return None if self._runner is None else self._runner.version

    def all_static_schedules(self) -> list[Schedule]:
        """The static schedules: from code and configuration, and from task labels.

        Before :meth:`startup` (e.g. in a dashboard or CLI process that runs no replica) the task
        labels are read now, from the tasks registered on the broker.

        Raises:
            ScheduleConfigError: for an invalid label entry or an id used twice.

        """
        if not self.use_labels or self._labels_read:
            return list(self.static_schedules)
        return merge_schedules(
            [*self.static_schedules, *schedules_from_labels(self.broker)],
            source="KitScheduler and task labels",
        )

    @property
    def store(self) -> RedisScheduleStore:
        """The dynamic schedule store of this group (available after :meth:`startup`)."""
        if self._client is None:
            raise RuntimeError("the scheduler is not started")
        return RedisScheduleStore(self._client, name=self.keys.name, prefix=self.keys.prefix)

    async def startup(self) -> None:
        """Start the broker, read label schedules, and start the replica loop."""
        await super().startup()
        self.static_schedules = self.all_static_schedules()
        self._labels_read = True
        # Bounded waits: a hung Redis call must not outlast the lease.
        self._client = make_client(
            self.redis_url, connect_timeout=self.lease, socket_timeout=self.lease
        )
        self._runner = ReplicaRunner(
            self.broker,
            self._client,
            self.keys,
            static=self.static_schedules,
            lease=self.lease,
            grace=self.grace,
            refresh=self.refresh,
            kick_ahead=self.kick_ahead,
            send_timeout=self.send_timeout,
        )
        self._runner.start()
        if self.broker.is_scheduler_process:
            self._stop_on_sigterm()

    def _stop_on_sigterm(self) -> None:
        """Under ``taskiq scheduler``, make SIGTERM stop cleanly, like Ctrl-C does.

        taskiq's CLI stops on SIGINT only (SIGTERM would kill it without a shutdown). Cancelling
        the CLI's task makes it call :meth:`shutdown`, which hands the lease over at once instead
        of after ``lease`` seconds: what ``docker stop`` and Kubernetes rollouts need. On Python
        3.10, whose ``asyncio.run`` lets Ctrl-C escape as ``KeyboardInterrupt`` without that
        shutdown, SIGINT is handled the same way.
        """
        main = asyncio.current_task()
        if main is None:
            return
        loop = asyncio.get_running_loop()
        try:
            for handled in _STOP_SIGNALS:
                loop.add_signal_handler(handled, main.cancel)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            return
        self._sigterm_handled = True

    async def shutdown(self) -> None:
        """Stop the loop, hand the lease over at once, and shut the broker down."""
        if self._sigterm_handled:
            for handled in _STOP_SIGNALS:
                asyncio.get_running_loop().remove_signal_handler(handled)
            self._sigterm_handled = False
        if self._runner is not None:
            await self._runner.stop()
            self._runner = None
        if self._client is not None:
            await close_client(self._client)
            self._client = None
        await super().shutdown()

    async def on_ready(self, source: ScheduleSource, task: ScheduledTask) -> None:
        """Send a schedule of another taskiq source, on the leader only."""
        if self.is_leader:
            await super().on_ready(source, task)
