"""The base every kit broker extends: timing labels, status, and the delivery gate."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncGenerator
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.message import BrokerMessage

from taskiq_kit.delivery import Delivery, DeliveryGate
from taskiq_kit.labels import Timing, TimingMiddleware, read_timing
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.status import StatusMiddleware


class KitBroker(AsyncBroker):
    """A taskiq broker with delays, expiry, status and dead-lettering wired in.

    Transports implement :meth:`publish` (send now or at ``timing.due_at``) and
    :meth:`deliveries` (yield :class:`~taskiq_kit.delivery.Delivery` objects); this class turns
    them into taskiq's ``kick`` and ``listen``.

    Args:
        result_backend: where results, status records and progress live.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.

    """

    result_backend: KitResultBackend[Any]

    def __init__(
        self, *, result_backend: KitResultBackend[Any], max_delivery_attempts: int = 5
    ) -> None:
        super().__init__()
        self.result_backend = result_backend
        self.gate = DeliveryGate(self, max_attempts=max_delivery_attempts)
        self.add_middlewares(TimingMiddleware(), StatusMiddleware())

    async def kick(self, message: BrokerMessage) -> None:
        """Send ``message`` now, or hold it until its ``delay`` / ``eta``."""
        await self.publish(message, read_timing(message.labels))

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield the deliveries that may run, settling the others through the gate."""
        async for delivery in self.deliveries():
            admitted = await self.gate.admit(delivery)
            if admitted is not None:
                yield admitted

    @abstractmethod
    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Send ``message`` so that it is delivered no earlier than ``timing.due_at``."""

    @abstractmethod
    def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield messages as the transport delivers them."""
