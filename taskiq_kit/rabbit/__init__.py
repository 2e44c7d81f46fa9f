"""The RabbitMQ broker (``amqp://``), built on aio-pika.

Needs the ``rabbit`` extra: ``pip install taskiq-kit[rabbit]``.
"""

from taskiq_kit._compat import require

require("aio_pika", extra="rabbit", feature="the RabbitMQ broker")

from taskiq_kit.rabbit.broker import RabbitBroker  # noqa: E402
from taskiq_kit.rabbit.delay import DelayMode  # noqa: E402
from taskiq_kit.rabbit.migrate import move_queue  # noqa: E402
from taskiq_kit.rabbit.topology import QueueType, RabbitNames  # noqa: E402

__all__ = ["DelayMode", "QueueType", "RabbitBroker", "RabbitNames", "move_queue"]
