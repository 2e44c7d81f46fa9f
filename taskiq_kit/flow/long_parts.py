"""The parts of long tasks that transports and stores implement: messages, leases, deliveries.

See :mod:`taskiq_kit.flow.long` for the design.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskiq.labels import LabelType

#: Header of a message a sweep sent again: how many times it was (its re-sends so far).
RESENDS_HEADER = "x-kit-long-resends"
#: The same count as a label of the body: it stays with the message when the kit sends it
#: again without its headers (flow control putting off a delivery over a limit).
RESENDS_LABEL = "kit_long_resends"


def _count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def resends_of(headers: Mapping[str, Any], body: bytes) -> int:
    """The re-sends a delivery counts: its header's, or its body's label's (the greater)."""
    counted = _count(headers.get(RESENDS_HEADER, 0))
    if RESENDS_LABEL.encode() not in body:
        return counted  # the common case, without parsing
    try:
        labels = json.loads(body).get("labels")
    except (ValueError, AttributeError):
        return counted
    if not isinstance(labels, dict):
        return counted
    return max(counted, _count(labels.get(RESENDS_LABEL)))


def with_resends(body: bytes, resends: int) -> bytes:
    """``body`` with its :data:`RESENDS_LABEL` set to ``resends`` (as is when it is no JSON task)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    labels = parsed.get("labels") if isinstance(parsed, dict) else None
    if not isinstance(labels, dict):
        return body
    labels[RESENDS_LABEL] = str(resends)
    types = parsed.get("labels_types")
    if isinstance(types, dict):
        types[RESENDS_LABEL] = LabelType.STR.value
    return json.dumps(parsed, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class KeptMessage:
    """A message kept in the store while its run goes on, enough to send it again.

    Attributes:
        task_id: the task (one kept message per task id).
        task_name: the task's name (headers of the re-sent message).
        queue: the queue it came from, and goes back to.
        body: the message body, as delivered.
        priority: its priority, if any.
        resends: how many times a sweep has sent it again already.

    """

    task_id: str
    task_name: str
    queue: str
    body: bytes
    priority: int | None = None
    resends: int = 0


class LeaseStore(Protocol):
    """Where kept messages and their leases live (the broker's result store)."""

    async def keep(self, message: KeptMessage, *, owner: str, until: float) -> None:
        """Store ``message`` with a lease of ``owner`` until ``until`` (unix seconds)."""
        ...

    async def renew(self, task_ids: Sequence[str], *, owner: str, until: float) -> list[str]:
        """Extend the leases ``owner`` holds; return the task ids whose lease it lost."""
        ...

    async def release(self, task_id: str, *, owner: str) -> None:
        """Delete the kept message and lease of ``task_id`` if ``owner`` holds it."""
        ...

    async def is_kept(self, task_id: str) -> bool:
        """Whether the store keeps a message of ``task_id`` (leased or expired)."""
        ...

    async def claim_expired(
        self, *, now: float, owner: str, until: float, limit: int
    ) -> list[KeptMessage]:
        """Move up to ``limit`` leases that expired by ``now`` to ``owner``, until ``until``.

        Atomic: two sweeps never claim the same lease while it runs.
        """
        ...


class InFlight(Protocol):
    """A delivery handed to the worker and not settled yet, as the transport tracks it."""

    @property
    def task_id(self) -> str:
        """The task id of the message (RabbitMQ: its ``message_id``)."""
        ...

    @property
    def received_at(self) -> float:
        """When the transport delivered it (``time.monotonic()``): its timeout counts from then."""
        ...

    @property
    def kept(self) -> bool:
        """Whether it was settled early (see :meth:`settle_early`)."""
        ...

    @property
    def body(self) -> bytes:
        """The message body (its labels say whether the task is long)."""
        ...

    def kept_message(self) -> KeptMessage:
        """The message, as the store keeps it."""
        ...

    async def settle_early(self, on_done: Callable[[], Awaitable[None]]) -> None:
        """Acknowledge now; the run's own ack later calls ``on_done`` instead of acking."""
        ...


class Transport(Protocol):
    """What the keeper asks of the transport."""

    def in_flight(self) -> Iterable[InFlight]:
        """The deliveries handed out and not settled."""
        ...

    async def resend(self, message: KeptMessage) -> None:
        """Publish ``message`` again (confirmed), with :data:`RESENDS_HEADER` set."""
        ...

    async def dead_letter(self, message: KeptMessage, reason: str) -> None:
        """Publish ``message`` to the dead-letter queue with ``reason`` (confirmed)."""
        ...
