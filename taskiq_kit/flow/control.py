"""Flow control of one broker: the policies of its tasks, the kick side and the worker side.

* Definition (:meth:`FlowControl.define`): a task's options are checked and kept, its labels
  made plain text.
* Kick (:meth:`FlowControl.plan`, :meth:`FlowControl.kick`): key functions run with the
  arguments; ``unique_for`` returns the handle of the task already holding the key;
  ``debounce`` delays the kick and supersedes the one before it.
* Worker (:meth:`FlowControl.admit`, called by the delivery gate before the Receiver): a
  debounced task that was superseded ends ``aborted``; a task over its concurrency or rate
  limit is re-scheduled through the broker's own delay path (its record ``scheduled``, with
  the reason) and its delivery settled, so no worker holds it. A task that may run holds its
  concurrency slot through a lease renewed while it runs (:meth:`FlowControl.run_ended`
  releases it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from taskiq.labels import LabelType

from taskiq_kit.exceptions import FlowKeyError, FlowStoreError, InvalidFlowOptionError
from taskiq_kit.flow import policy as wire
from taskiq_kit.flow.policy import FlowPolicy, call_key, kick_labels, read_policy
from taskiq_kit.labels import DELAY, DUE_AT, KICKED_AT, label_float, parse_seconds, read_timing
from taskiq_kit.labels import Timing as _Timing
from taskiq_kit.results.lifecycle import attempt_of
from taskiq_kit.results.record import FINAL_VALUES, TaskStatus

if TYPE_CHECKING:
    from taskiq.abc.formatter import TaskiqFormatter
    from taskiq.decor import AsyncTaskiqDecoratedTask
    from taskiq.kicker import AsyncKicker
    from taskiq.message import BrokerMessage, TaskiqMessage

    from taskiq_kit.flow.store import FlowStore
    from taskiq_kit.results.backend import KitResultBackend
    from taskiq_kit.results.lifecycle import TaskLifecycle

logger = logging.getLogger("taskiq_kit.flow")

#: Re-scheduling of a task without a free slot: the first pause, the longest (seconds).
SLOT_FIRST_PAUSE = 0.05
SLOT_LONGEST_PAUSE = 1.0
#: A rate wait shorter than this runs at once (the transport's own delay is coarser).
RATE_SLACK = 0.002
_T = TypeVar("_T")
_FLOAT = LabelType.FLOAT.value
_STR = LabelType.STR.value


@dataclass(frozen=True, slots=True)
class KickPlan:
    """What flow control does with one kick: labels to add, and a claim to take."""

    labels: dict[str, str]
    unique: tuple[str, float] | None = None
    debounce: tuple[str, float] | None = None


def _unkeyed(found: FlowPolicy) -> FlowPolicy:
    """``found`` with its rate and concurrency limits applying to the whole task."""
    rate, slots = found.rate, found.concurrency
    return FlowPolicy(
        rate=None if rate is None else dataclasses.replace(rate, key=None),
        concurrency=None if slots is None else dataclasses.replace(slots, key=None),
    )


def slot_pause(deferrals: int) -> float:
    """Seconds before a task without a free slot asks again: doubling, capped, jittered."""
    pause = min(SLOT_LONGEST_PAUSE, SLOT_FIRST_PAUSE * 2 ** min(deferrals, 10))
    return float(pause * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not security


class FlowBroker(Protocol):
    """What flow control needs of its broker (a :class:`~taskiq_kit.base.KitBroker`)."""

    runs_elsewhere: bool
    formatter: TaskiqFormatter

    @property
    def result_backend(self) -> KitResultBackend[Any]:
        """The broker's result store."""

    @property
    def lifecycle(self) -> TaskLifecycle:
        """The owner of the broker's record transitions."""

    def id_generator(self) -> str:
        """A new task id."""

    async def publish(self, message: BrokerMessage, timing: _Timing) -> None:
        """Send ``message`` so that it is delivered no earlier than ``timing.due_at``."""


class FlowControl:
    """Rate limits, concurrency limits, unique and debounced tasks of one broker.

    Args:
        broker: the kit broker whose tasks, result store and delay path it uses.

    """

    def __init__(self, broker: FlowBroker) -> None:
        self.broker = broker
        self.policies: dict[str, FlowPolicy] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        self._store: tuple[object, FlowStore] | None = None
        #: Slots held by runs of this process: task id -> (key, lease seconds).
        self._held: dict[str, tuple[str, float]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._pause = 0.0
        self._releases: set[asyncio.Task[None]] = set()
        #: Deliveries this process put off (re-scheduled) or dropped as superseded.
        self.deferred = 0
        self.superseded = 0

    # Definition

    def define(self, task_name: str, task: AsyncTaskiqDecoratedTask[Any, Any]) -> None:
        """Check the flow options among ``task``'s labels; keep them; leave plain text labels.

        Raises:
            InvalidFlowOptionError: for an option that cannot be honoured.
            FlowOptionTypeError: for an option of the wrong type.

        """
        labels = task.labels
        if not any(name in labels for name in wire.OPTIONS):
            return
        found = read_policy(labels, task_name)
        self.policies[task_name] = found
        labels.update(wire.definition_labels(found))
        with contextlib.suppress(TypeError, ValueError):  # no signature: keys get the call as is
            self._signatures[task_name] = inspect.signature(task.original_func)

    # Store

    @property
    def store(self) -> FlowStore:
        """The flow store of the broker's result store (Redis, PostgreSQL or this process).

        Raises:
            FlowStoreError: when the result store lives in one process and tasks run in others.

        """
        backend = self.broker.result_backend
        cached = self._store
        if cached is not None and cached[0] is backend:
            return cached[1]
        # Imported here: the stores import the result backends, which import the broker base.
        from taskiq_kit.flow.postgres_store import PostgresFlowStore  # noqa: PLC0415
        from taskiq_kit.flow.redis_store import RedisFlowStore  # noqa: PLC0415
        from taskiq_kit.flow.store import MemoryFlowStore  # noqa: PLC0415
        from taskiq_kit.results.postgres import PostgresResultBackend  # noqa: PLC0415
        from taskiq_kit.results.redis import RedisResultBackend  # noqa: PLC0415

        store: FlowStore
        if isinstance(backend, RedisResultBackend):
            store = RedisFlowStore(backend)
        elif isinstance(backend, PostgresResultBackend):
            store = PostgresFlowStore(backend)
        elif backend.process_local and not self.broker.runs_elsewhere:
            store = MemoryFlowStore()
        else:
            names = ", ".join(sorted(self.policies)) or "?"
            raise FlowStoreError(task=names, option="flow control", store=repr(backend))
        self._store = (backend, store)
        return store

    # Kick side

    def plan(
        self, task_name: str, labels: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> KickPlan | None:
        """What flow control adds to a kick (``None``: nothing, the common case).

        Raises:
            InvalidFlowOptionError: for an option given at kick time that cannot be honoured.
            FlowKeyError: when a key function raises or returns no usable key.

        """
        found = self.policies.get(task_name)
        if found is None:
            if not any(labels.get(name) is not None for name in wire.OPTIONS):
                return None
            found = read_policy(labels, task_name)
        args, kwargs = self._named(task_name, args, kwargs)
        added = kick_labels(found, labels, task_name, args, kwargs)
        unique = debounce = None
        if found.unique is not None:
            key = call_key(found.unique.key, wire.UNIQUE_FOR, task_name, args, kwargs)
            unique = (f"unique\x1f{task_name}\x1f{key}", float(found.unique.seconds))
        if found.debounce is not None:
            key = call_key(found.debounce.key, wire.DEBOUNCE, task_name, args, kwargs)
            debounce = (f"debounce\x1f{task_name}\x1f{key}", float(found.debounce.seconds))
            added[wire.DEBOUNCE_KEY] = debounce[0]
            added[wire.FLOW] = "1"
        return KickPlan(added, unique, debounce)

    def _named(
        self, task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments by name (as the task's signature names them), when it can.

        A key function ``lambda customer_id, **_: customer_id`` then works however the task
        was called, and argument digests do not depend on it either.
        """
        signature = self._signatures.get(task_name)
        if signature is None:
            return args, kwargs
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return args, kwargs  # taskiq's own check reports it; keys get the call as is
        named: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                return args, kwargs
            if kind is inspect.Parameter.VAR_KEYWORD:
                named.update(value)
            else:
                named[name] = value
        return (), named

    async def kick(
        self,
        kicker: AsyncKicker[Any, Any],
        plan: KickPlan,
        send: Callable[[], Awaitable[Any]],
        handle: Callable[[str], Any],
    ) -> Any:
        """Send a kick with ``plan``: ``send()`` kicks with the kicker's labels and task id.

        Returns what ``send()`` returns, or ``handle(existing_task_id)`` for a unique task
        whose key another kick already holds.

        Raises:
            FlowStoreError: when the broker's store lives in this process only and tasks run
                in others (limits could not be shared).

        """
        self.store  # noqa: B018 - raises FlowStoreError for a store only this process sees
        labels, task_id = kicker.labels, kicker.custom_task_id
        kicker.labels = {**labels, **plan.labels}
        try:
            if plan.unique is None and plan.debounce is None:
                return await send()
            own_id = task_id or self.broker.id_generator()
            kicker.custom_task_id = own_id
            if plan.unique is not None:
                return await self._kick_unique(plan.unique, own_id, send, handle)
            return await self._kick_debounced(kicker, plan.debounce, own_id, send)
        finally:
            kicker.labels, kicker.custom_task_id = labels, task_id

    async def _kick_unique(
        self,
        claim: tuple[str, float],
        own_id: str,
        send: Callable[[], Awaitable[Any]],
        handle: Callable[[str], Any],
    ) -> Any:
        key, ttl = claim
        existing = await self._claim(key, own_id, ttl)
        if existing is not None:
            logger.debug("Unique kick: task %s holds the key; its handle returned.", existing)
            return handle(existing)
        try:
            return await send()
        except BaseException:
            await self.store.replace_claim(key, own_id, "", 0.001)
            raise

    async def _claim(self, key: str, own_id: str, ttl: float) -> str | None:
        """Claim ``key``; return the task that holds it instead, unless that one is final."""
        store, lifecycle = self.store, self.broker.lifecycle
        existing: str | None = None
        for _ in range(5):
            existing = await store.claim(key, own_id, ttl)
            if existing is None or existing == own_id:
                return None
            if existing == "":
                # A kick that failed to send left the key: take it.
                if await store.replace_claim(key, existing, own_id, ttl):
                    return None
                continue
            record = await lifecycle.record(existing)
            if record is None or not record.status.is_final:
                return existing  # queued, delayed, running (or its kick is on its way)
            if await store.replace_claim(key, existing, own_id, ttl):
                return None
        return existing

    async def _kick_debounced(
        self,
        kicker: AsyncKicker[Any, Any],
        debounce: tuple[str, float] | None,
        own_id: str,
        send: Callable[[], Awaitable[Any]],
    ) -> Any:
        assert debounce is not None
        key, seconds = debounce
        labels = kicker.labels
        current = labels.get(DELAY)
        delay = seconds if current is None else max(seconds, parse_seconds(DELAY, current))
        labels[DELAY] = delay
        ttl = seconds + max(60.0, seconds)
        previous = await self.store.set_latest(key, own_id, ttl)
        try:
            task = await send()
        except BaseException:
            if previous is not None and previous != own_id:
                # Not sent: the window's earlier kick is its latest again (else it drops itself).
                await self.store.replace_latest(key, own_id, previous, ttl)
            raise
        if previous is not None and previous != own_id:
            await self._supersede(previous, own_id)
        return task

    async def _supersede(self, task_id: str, by: str) -> None:
        """End a debounced kick that has not started: ``aborted``, superseded by ``by``."""
        lifecycle = self.broker.lifecycle
        record = await lifecycle.record(task_id)
        if record is None or record.status not in (TaskStatus.PENDING, TaskStatus.SCHEDULED):
            return  # started already (or gone): it is no longer waiting in the window
        await lifecycle.aborted(
            task_id,
            kicked_at=record.kicked_at,
            attempt=record.attempt,
            reason=f"superseded by {by}",
        )

    # Worker side

    async def admit(self, message: TaskiqMessage) -> bool:
        """Whether ``message`` may run now; when not, it was re-scheduled or ended here.

        Runs in the delivery gate. A message without flow labels costs nothing, unless its
        task has flow options here: then it was kicked by a plain taskiq kicker (taskiq's
        scheduler), and its limits are computed here from its arguments. Store outages are
        waited out (as the worker's record writes are).
        """
        labels = message.labels
        if labels.get(wire.FLOW) is None and not self._late_labels(message):
            return True
        debounce_key = labels.get(wire.DEBOUNCE_KEY)
        if isinstance(debounce_key, str):
            latest = await self._call(self.store.latest, debounce_key)
            if latest is not None and latest != message.task_id:
                await self._superseded(message, latest)
                return False
        slots = wire.read_slots(labels)
        if slots is not None and not await self._call(
            self.store.acquire_slot, slots.key, message.task_id, slots.limit, slots.lease
        ):
            deferrals = int(label_float(labels.get(wire.DEFERRALS)) or 0)
            due_at = time.time() + slot_pause(deferrals)
            await self._defer(message, due_at, f"concurrency limit {slots.limit} reached")
            return False
        rate = wire.read_rate(labels)
        if rate is not None and labels.pop(wire.RESERVED, None) is None:
            wait = await self._call(
                self.store.reserve_rate, rate.key, rate.interval, rate.tolerance
            )
            if wait > RATE_SLACK:
                if slots is not None:
                    await self._call(self.store.release_slot, slots.key, message.task_id)
                labels[wire.RESERVED] = "1"
                self._type(message, wire.RESERVED, _STR)
                await self._defer(message, time.time() + wait, f"rate limit {rate.shown}")
                return False
        if slots is not None:
            self._hold(message.task_id, slots.key, slots.lease)
        return True

    async def _call(self, function: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """``function(*args)`` on the store, waiting out an outage in a worker."""
        guard = self.broker.lifecycle.guard
        if guard is None:
            return await function(*args)
        return await guard.call(function, *args)

    def _late_labels(self, message: TaskiqMessage) -> bool:
        """Add the limits of a task with flow options kicked without them; whether it has any."""
        found = self.policies.get(message.task_name)
        if found is None or (found.rate is None and found.concurrency is None):
            return False
        args, kwargs = self._named(message.task_name, tuple(message.args), message.kwargs)
        try:
            added = kick_labels(found, message.labels, message.task_name, args, kwargs)
        except FlowKeyError as exc:
            # Its text may quote the arguments (the key it returned, the error it raised).
            cause = exc.__cause__
            logger.warning(
                "Task %s: the %s key function failed (%s); its limits apply to the whole task.",
                message.task_id,
                exc.option,
                "no usable key" if cause is None else type(cause).__name__,
            )
            added = kick_labels(_unkeyed(found), {}, message.task_name, (), {})
        except InvalidFlowOptionError as exc:
            logger.warning("Task %s: %s; its limits apply to the whole task.", message.task_id, exc)
            added = kick_labels(_unkeyed(found), {}, message.task_name, (), {})
        message.labels.update(added)
        for name in added:
            self._type(message, name, _STR)
        return True

    async def _superseded(self, message: TaskiqMessage, latest: str) -> None:
        self.superseded += 1
        logger.info(
            "Task %s (%s) superseded by %s; dropped.", message.task_id, message.task_name, latest
        )
        await self.broker.lifecycle.aborted(
            message.task_id,
            kicked_at=label_float(message.labels.get(KICKED_AT)),
            attempt=attempt_of(message.labels),
            reason=f"superseded by {latest}",
        )

    @staticmethod
    def _type(message: TaskiqMessage, name: str, label_type: int) -> None:
        if message.labels_types is None:
            message.labels_types = {}
        message.labels_types[name] = label_type

    async def _defer(self, message: TaskiqMessage, due_at: float, reason: str) -> None:
        """Send ``message`` again through the broker's delay path, due at ``due_at``.

        Its record says ``scheduled`` with ``reason`` first; a record that is final, or whose
        kick was aborted, stops it here. One that would be due after it expires is expired now.
        """
        broker = self.broker
        lifecycle = broker.lifecycle
        labels = message.labels
        timing = read_timing(labels)
        if timing.expires_at is not None and due_at >= timing.expires_at:
            logger.info(
                "Task %s would run after it expires (%s); dropped.", message.task_id, reason
            )
            await lifecycle.expired(message)
            return
        outcome = await lifecycle.write(lifecycle.deferred_write(message, due_at, reason))
        if not outcome.applied and (outcome.abort_requested or outcome.status in FINAL_VALUES):
            if outcome.abort_requested and outcome.status not in FINAL_VALUES:
                await lifecycle.aborted(
                    message.task_id,
                    kicked_at=label_float(labels.get(KICKED_AT)),
                    attempt=attempt_of(labels),
                )
            return
        deferrals = int(label_float(labels.get(wire.DEFERRALS)) or 0) + 1
        labels[wire.DEFERRALS] = str(deferrals)
        self._type(message, wire.DEFERRALS, LabelType.INT.value)
        labels[DUE_AT] = repr(due_at)
        self._type(message, DUE_AT, _FLOAT)
        self.deferred += 1
        await broker.publish(broker.formatter.dumps(message), _Timing(due_at, timing.expires_at))

    # Slot leases of the runs of this process

    def _hold(self, task_id: str, key: str, lease: float) -> None:
        self._held[task_id] = (key, lease)
        renewer = self._renewer
        if renewer is not None and not renewer.done() and lease / 3 < self._pause:
            renewer.cancel()  # it sleeps longer than this lease allows: start again
            renewer = None
        if renewer is None or renewer.done():
            self._pause = lease / 3
            self._renewer = asyncio.create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Renew the leases of the slots held here every third of the shortest lease."""
        while self._held:
            self._pause = min(lease for _, lease in self._held.values()) / 3
            await asyncio.sleep(self._pause)
            held = [(key, task_id, lease) for task_id, (key, lease) in self._held.items()]
            if not held:
                return
            try:
                await self.store.renew_slots(held)
            except Exception as exc:  # noqa: BLE001 - try again next time; the lease is longer
                logger.warning("Cannot renew %d concurrency slot(s) (%s).", len(held), exc)

    def run_ended(self, task_id: str) -> None:
        """Release the slot the run of ``task_id`` holds, if any (in the background)."""
        if not self._held:
            return
        held = self._held.pop(task_id, None)
        if held is None:
            return
        release = asyncio.create_task(self._release(held[0], task_id))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    async def _release(self, key: str, task_id: str) -> None:
        try:
            await self.store.release_slot(key, task_id)
        except Exception as exc:  # noqa: BLE001 - the lease ends it anyway
            logger.warning("Cannot release the slot of task %s (%s).", task_id, exc)

    async def shutdown(self) -> None:
        """Stop renewing leases; wait for the releases under way."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
