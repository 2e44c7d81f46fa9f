"""The replica loop: keep (or wait for) the lease, and as leader fire each instant exactly once.

Two tasks run side by side, so a slow kick never delays a lease renewal:

* the *lease* task takes or renews the lease every ``lease / 3`` seconds; a follower retries every
  ``refresh`` seconds and as soon as the current lease may have lapsed (Redis tells it when);
* the *firing* task, while this replica leads, sleeps until the next firing instant (not to a
  second boundary), claims the firing in Redis (fenced by the lease token) and kicks the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from taskiq_kit.exceptions import NotAKitBrokerError, TaskNotFoundError
from taskiq_kit.labels import KICKED_AT
from taskiq_kit.results.api import get_task_record
from taskiq_kit.results.record import TaskStatus
from taskiq_kit.scheduler.control import ScheduleSwitches, apply_switches, schedule_kicker
from taskiq_kit.scheduler.lease import FiringLedger, RedisLease
from taskiq_kit.scheduler.models import Schedule, fire_task_id
from taskiq_kit.scheduler.store import RedisScheduleStore

if TYPE_CHECKING:
    from taskiq.abc.broker import AsyncBroker

    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.scheduler.keys import SchedulerKeys

logger = logging.getLogger("taskiq_kit.scheduler")

#: Label carrying the firing instant (unix seconds) on every scheduled kick.
FIRE_AT_LABEL = "kit_fire_at"
#: Label set (to ``True``) on a run sent by ``run_schedule_now`` rather than by a firing.
RUN_NOW_LABEL = "kit_run_now"
_NOT_YET_RUN = (TaskStatus.PENDING, TaskStatus.SCHEDULED)
#: In-flight firings older than this (seconds) are given up instead of re-sent.
RESEND_WINDOW = 300.0


class ReplicaRunner:
    """Runs one replica of a scheduler group (see the module docstring).

    Args:
        broker: where tasks are kicked.
        client: the Redis client the group coordinates through.
        keys: the group's key names.
        static: schedules from code, configuration and labels (they shadow dynamic ones with the
            same id); an operator's pause switches apply to them.
        lease: lease time in seconds.
        grace: seconds a firing may be late and still count as on time.
        refresh: seconds between checks of the dynamic store.
        kick_ahead: kick this many seconds early, with an ``eta`` label of the instant.
        send_timeout: seconds one kick may take before it is left for a re-send.

    """

    def __init__(
        self,
        broker: AsyncBroker,
        client: RedisClient,
        keys: SchedulerKeys,
        *,
        static: Iterable[Schedule],
        lease: float,
        grace: float,
        refresh: float,
        kick_ahead: float,
        send_timeout: float,
    ) -> None:
        self.broker = broker
        self.keys = keys
        self.static = list(static)
        self.grace, self.refresh, self.kick_ahead = grace, refresh, kick_ahead
        self.send_timeout = send_timeout
        self.lease = RedisLease(client, keys, ttl=lease)
        self.ledger = FiringLedger(client, keys, token=self.lease.token)
        self.store = RedisScheduleStore(client, name=keys.name, prefix=keys.prefix)
        self.switches = ScheduleSwitches(client, keys)
        self.schedules: dict[str, Schedule] = {}
        self._leading = False
        self._valid_until = 0.0  # time.monotonic() until which this replica may fire
        self._term = 0  # bumped on each accession; the firing task reloads state on a new term
        self._wake = asyncio.Event()
        self._fired: dict[str, float] = {}
        self._sending: dict[tuple[str, float], asyncio.Task[None]] = {}
        self._store_version = -1
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def version(self) -> int | None:
        """The group's version counter as this replica last read its schedules (``None``: not yet).

        Every change of the dynamic store and every pause or resume bumps the counter; once this
        reaches the value a change left, the replica fires by the change.
        """
        return None if self._store_version < 0 else self._store_version

    @property
    def is_leader(self) -> bool:
        """Whether this replica holds the lease (and may fire)."""
        return self._leading and time.monotonic() < self._valid_until

    def start(self) -> None:
        """Start the lease and firing tasks."""
        name = self.keys.name
        self._tasks = [
            asyncio.create_task(self._guard(self._lease_loop), name=f"kit-scheduler-lease-{name}"),
            asyncio.create_task(self._guard(self._fire_loop), name=f"kit-scheduler-fire-{name}"),
        ]

    async def stop(self) -> None:
        """Stop both tasks and release the lease, so a follower takes over at once."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._sending:
            # Let kicks under way finish; what does not stays in flight for the next leader.
            pending = list(self._sending.values())
            _, late = await asyncio.wait(pending, timeout=min(2.0, self.send_timeout))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._leading:
            self._leading = False
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _guard(self, body: Callable[[], Any]) -> None:
        """Run ``body`` forever; an error (e.g. Redis down) costs leadership, then a retry."""
        while True:
            try:
                await body()
            except Exception:
                logger.exception("Scheduler %r: loop failed; retrying in 1 s.", self.keys.name)
                self._leading = False
                await asyncio.sleep(1.0)

    async def _lease_loop(self) -> None:
        while True:
            started = time.monotonic()
            state = await self.lease.take()
            if not state.held:
                if self._leading:
                    logger.warning("Scheduler %r: lost the lease.", self.keys.name)
                self._leading = False
                # Retry when the current lease may have lapsed, and at least every `refresh`
                # seconds (a leader that stops cleanly releases the lease early).
                pause = min(self.lease.ttl / 3, self.refresh, state.ttl + 0.02)
            else:
                # Stop firing a little before the lease could lapse if renewals start failing.
                self._valid_until = started + state.ttl * 0.9
                if not self._leading:
                    logger.info("Scheduler %r: this replica leads now.", self.keys.name)
                    self._leading = True
                    self._term += 1
                    self._wake.set()
                pause = self.lease.ttl / 3
            await asyncio.sleep(max(0.0, started + pause - time.monotonic()))

    async def _fire_loop(self) -> None:
        term = 0
        last_resend = 0.0
        while True:
            self._wake.clear()
            timeout = self.refresh
            if self.is_leader:
                if term != self._term:
                    term = self._term
                    self._store_version = -1  # forces a full re-read, records included
                    last_resend = 0.0
                await self._refresh()
                if time.monotonic() - last_resend >= self.lease.ttl:
                    last_resend = time.monotonic()
                    await self._resend_in_flight()
                next_due = await self._fire_due()
                if next_due is not None:
                    timeout = min(timeout, next_due - self.kick_ahead - time.time())
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, timeout))

    async def _refresh(self) -> None:
        """Re-read dynamic schedules and the pause switches when their version changed."""
        version = await self.store.version()
        if version == self._store_version:
            return
        merged = {schedule.id: schedule for schedule in await self.store.list()}
        for schedule in apply_switches(self.static, await self.switches.read()):
            if schedule.id in merged:
                logger.warning("Dynamic schedule %r is shadowed by a static one.", schedule.id)
            merged[schedule.id] = schedule
        self.schedules = merged
        self._store_version = version
        # A deleted schedule's records went with it: re-read them, so a re-added id starts afresh.
        self._fired = await self.ledger.last_fired()

    async def _resend_in_flight(self) -> None:
        """Send again firings claimed but not confirmed as sent (same task ids)."""
        now = time.time()
        for schedule_id, instant in (await self.ledger.in_flight()).items():
            if (schedule_id, instant) in self._sending:
                continue
            schedule = self.schedules.get(schedule_id)
            if schedule is None or now - instant > RESEND_WINDOW:
                logger.error("Giving up firing %r at %.3f: not sent in time.", schedule_id, instant)
                await self.ledger.sent(schedule_id, instant)
                continue
            if await self._reached_a_worker(schedule_id, instant):
                await self.ledger.sent(schedule_id, instant)
                continue
            logger.warning("Re-sending the firing of %r at %.3f.", schedule_id, instant)
            self._spawn_send(schedule, instant)

    async def _reached_a_worker(self, schedule_id: str, instant: float) -> bool:
        """Whether the first send of a firing got through (a worker started or ran it)."""
        task_id = fire_task_id(self.keys.name, schedule_id, instant)
        try:
            record = await get_task_record(self.broker, task_id)
        except (NotAKitBrokerError, TaskNotFoundError):
            return False
        return record.kicked_at == instant and record.status not in _NOT_YET_RUN

    async def _fire_due(self) -> float | None:
        """Handle every firing that is due; return the earliest upcoming instant."""
        now = time.time()
        upcoming: list[float] = []
        due: list[tuple[Schedule, float, bool]] = []
        for schedule in self.schedules.values():
            if not schedule.enabled:
                continue
            last = self._fired.get(schedule.id)
            if last is None:
                # Never fired: a once schedule counts from the start, others from now on.
                last = 0.0 if schedule.kind == "once" else now - self.grace
            try:
                instant = schedule.next_fire(last)
                instant = None if instant is None else round(instant, 6)
            except ValueError:
                logger.exception("Schedule %r: cannot compute its next firing.", schedule.id)
                continue
            if instant is None:
                continue
            if instant - self.kick_ahead > now:
                upcoming.append(instant)
                continue
            due.append(self._catch_up(schedule, instant, now))
        await asyncio.gather(*(self._fire(*item) for item in due))
        for schedule, instant, _ in due:
            following = schedule.next_fire(instant)
            if following is not None:
                upcoming.append(following)
        return min(upcoming, default=None)

    def _catch_up(
        self, schedule: Schedule, instant: float, now: float
    ) -> tuple[Schedule, float, bool]:
        """Apply the missed-run policy: (schedule, instant to record, whether to send)."""
        if now - instant <= self.grace:
            return schedule, instant, True
        latest = schedule.last_fire(now)
        latest = instant if latest is None or latest < instant else round(latest, 6)
        if now - latest <= self.grace:
            return schedule, latest, True  # only earlier firings were missed; this one is late
        if schedule.missed == "run_once":
            logger.warning("Schedule %r missed firings: running it once now.", schedule.id)
            return schedule, latest, True
        logger.warning("Schedule %r missed firings up to %.3f: skipped.", schedule.id, latest)
        return schedule, latest, False

    async def _fire(self, schedule: Schedule, instant: float, send: bool) -> None:
        if not self.is_leader:
            return
        claimed = await self.ledger.claim(schedule.id, instant, send=send)
        if claimed < 0:
            logger.warning(
                "Scheduler %r: lease lost before firing %r.", self.keys.name, schedule.id
            )
            self._leading = False
            return
        self._fired[schedule.id] = instant
        if claimed and send:
            self._spawn_send(schedule, instant)

    def _spawn_send(self, schedule: Schedule, instant: float) -> None:
        """Kick in the background, so a slow broker does not delay the next firings."""
        key = (schedule.id, instant)
        task = asyncio.create_task(self._send(schedule, instant), name=f"kit-scheduler-send-{key}")
        self._sending[key] = task
        task.add_done_callback(lambda _: self._sending.pop(key, None))

    async def _send(self, schedule: Schedule, instant: float) -> None:
        task_id = fire_task_id(self.keys.name, schedule.id, instant)
        labels: dict[str, Any] = {
            FIRE_AT_LABEL: instant,
            # Every send of one firing is the same kick: a worker drops a duplicate of a run
            # that already finished (see taskiq_kit.delivery).
            KICKED_AT: instant,
        }
        if self.kick_ahead > 0 and instant > time.time():
            labels["eta"] = instant
        kicker = schedule_kicker(self.broker, schedule, labels)
        try:
            await asyncio.wait_for(
                kicker.with_task_id(task_id).kiq(*schedule.args, **schedule.kwargs),
                self.send_timeout,
            )
        except Exception:
            # Stays in flight: re-sent (same task id) by this leader or the next one.
            logger.exception("Cannot send %r for schedule %r.", schedule.task, schedule.id)
            return
        logger.info(
            "Sent %r for schedule %r (%s), task id %s.",
            schedule.task,
            schedule.id,
            schedule.describe(),
            task_id,
        )
        try:
            await self.ledger.sent(schedule.id, instant)
        except Exception:
            # Sent but not confirmed: a later re-send repeats it with the same task id.
            logger.exception("Cannot confirm the firing of %r at %.3f.", schedule.id, instant)
