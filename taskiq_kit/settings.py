"""Settings of the kit, read from the environment (prefix ``TASKIQ_KIT_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY = 86_400.0


class KitSettings(BaseSettings):
    """Configuration of a kit broker.

    Every field can be set from the environment, e.g. ``TASKIQ_KIT_BROKER_URL`` or
    ``TASKIQ_KIT_RESULT_TTL``. :func:`taskiq_kit.make_broker` reads them for whatever its call
    leaves out (or takes a ``settings=`` object instead). URLs are secrets: their passwords
    never show in reprs.

    Attributes:
        broker_url: where tasks are sent: ``amqp://``, ``redis://`` or ``memory://``.
        result_url: where results, status and progress are kept; by default derived from
            the broker URL (see :func:`taskiq_kit.make_broker`).
        result_ttl: seconds results and status records are kept after their last update;
            ``None`` keeps them until deleted.
        connect_timeout: seconds to wait for a connection to the broker or the result store
            before start-up (or a kick) fails.
        max_delivery_attempts: deliveries of one message before it goes to the dead-letter queue.

    """

    model_config = SettingsConfigDict(env_prefix="TASKIQ_KIT_", frozen=True, extra="forbid")

    broker_url: SecretStr = SecretStr("memory://")
    result_url: SecretStr | None = None
    result_ttl: float | None = Field(default=DAY, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    max_delivery_attempts: int = Field(default=5, ge=1)
