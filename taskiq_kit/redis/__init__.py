"""The Redis broker: streams with a consumer group, delays in a sorted set (``pip install taskiq-kit[redis]``)."""

from taskiq_kit._compat import require

require("redis", extra="redis", feature="the Redis broker")

from taskiq_kit.exceptions import RedisSettingError  # noqa: E402
from taskiq_kit.redis.broker import RedisBroker  # noqa: E402
from taskiq_kit.redis.keys import RedisKeys  # noqa: E402

__all__ = ["RedisBroker", "RedisKeys", "RedisSettingError"]
