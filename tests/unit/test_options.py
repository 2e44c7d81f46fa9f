"""make_broker: TASKIQ_KIT_* settings feed it, and every option is checked when it builds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from taskiq_kit import KitSettings, make_broker, make_result_backend
from taskiq_kit.exceptions import InvalidOptionError, InvalidURLError, UnknownOptionError
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.redis import RedisBroker
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.redis import RedisResultBackend

REDIS = "redis://127.0.0.1:6379/3"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
ENV = ("BROKER_URL", "RESULT_URL", "RESULT_TTL", "CONNECT_TIMEOUT", "MAX_DELIVERY_ATTEMPTS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: a developer's own TASKIQ_KIT_* must not change the outcome."""
    for name in ENV:
        monkeypatch.delenv(f"TASKIQ_KIT_{name}", raising=False)


# Settings feed the factory; what the call gives wins.


def test_the_environment_names_the_broker_and_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKIQ_KIT_BROKER_URL", AMQP)
    monkeypatch.setenv("TASKIQ_KIT_RESULT_URL", REDIS)
    broker = make_broker()
    assert isinstance(broker, RabbitBroker)
    assert isinstance(broker.result_backend, RedisResultBackend)
    assert broker.result_backend.url == REDIS
    assert isinstance(make_broker(REDIS, result_url="memory://"), RedisBroker)


def test_connect_timeout_from_the_environment_reaches_broker_and_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKIQ_KIT_CONNECT_TIMEOUT", "1.5")
    rabbit = make_broker(AMQP, result_url="postgresql://127.0.0.1/test")
    assert isinstance(rabbit, RabbitBroker)
    assert rabbit.connection.connect_timeout == 1.5
    assert rabbit.consume_connection.connect_timeout == 1.5
    assert isinstance(rabbit.result_backend, PostgresResultBackend)
    assert rabbit.result_backend.connect_timeout == 1.5
    redis = make_broker(REDIS)
    assert isinstance(redis, RedisBroker)
    assert redis.connect_timeout == 1.5
    assert isinstance(redis.result_backend, RedisResultBackend)
    assert redis.result_backend.connect_timeout == 1.5
    explicit = make_broker(REDIS, connect_timeout=7, result_options={"connect_timeout": 2})
    assert isinstance(explicit, RedisBroker)
    assert explicit.connect_timeout == 7
    assert isinstance(explicit.result_backend, RedisResultBackend)
    assert explicit.result_backend.connect_timeout == 2


@pytest.mark.parametrize("url", ["memory://", REDIS, AMQP])
def test_max_delivery_attempts_and_result_ttl_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TASKIQ_KIT_MAX_DELIVERY_ATTEMPTS", "3")
    monkeypatch.setenv("TASKIQ_KIT_RESULT_TTL", "120")
    broker = make_broker(url)
    assert broker.gate.max_attempts == 3
    assert broker.result_backend.result_ttl == 120
    if isinstance(broker, RabbitBroker):
        assert broker.topology.max_attempts == 3
    explicit = make_broker(url, max_delivery_attempts=9, result_ttl=None)
    assert explicit.gate.max_attempts == 9
    assert explicit.result_backend.result_ttl is None


def test_given_settings_replace_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKIQ_KIT_RESULT_TTL", "120")
    broker = make_broker(settings=KitSettings(broker_url=SecretStr(REDIS), result_ttl=30))
    assert isinstance(broker, RedisBroker)
    assert broker.result_backend.result_ttl == 30


def test_a_bad_variable_names_itself_unless_the_call_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKIQ_KIT_CONNECT_TIMEOUT", "soon")
    with pytest.raises(InvalidOptionError, match="TASKIQ_KIT_CONNECT_TIMEOUT"):
        make_broker(REDIS)
    broker = make_broker(REDIS, connect_timeout=2)
    assert isinstance(broker, RedisBroker)
    assert broker.connect_timeout == 2


# Options are checked when the broker is built, not at the first kick.


@pytest.mark.parametrize("ttl", [-5, 0, "1h", float("nan")])
def test_a_bad_result_ttl_is_refused_at_build(ttl: Any) -> None:
    for call in (
        lambda: make_broker(REDIS, result_ttl=ttl),
        lambda: make_broker("memory://", result_ttl=ttl),
        lambda: make_result_backend(REDIS, result_ttl=ttl),
    ):
        with pytest.raises(InvalidOptionError, match="result_ttl") as caught:
            call()
        assert isinstance(caught.value, ValueError)
        assert isinstance(caught.value, TypeError)


def test_an_unknown_redis_option_is_refused_listing_the_valid_ones() -> None:
    with pytest.raises(UnknownOptionError, match="no_such_option") as caught:
        make_broker(REDIS, no_such_option=1)
    message = str(caught.value)
    assert "queue_name" in message
    assert "socket_timeout" in message
    assert isinstance(caught.value, TypeError)
    with pytest.raises(UnknownOptionError, match="no_such_param"):
        make_broker(f"{REDIS}?no_such_param=1")
    assert isinstance(make_broker(REDIS, socket_timeout=2.0, client_name="kit"), RedisBroker)


def test_an_unknown_rabbit_option_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownOptionError, match=r"no option 'queue'.*queue_name"):
        make_broker(AMQP, queue="tasks")


def test_an_unknown_result_option_is_refused() -> None:
    with pytest.raises(UnknownOptionError, match=r"RedisResultBackend has no option 'tabel'"):
        make_broker(REDIS, result_options={"tabel": "x"})


@pytest.mark.parametrize(
    ("url", "options", "fragment"),
    [
        (AMQP, {"prefetch_count": "10"}, "prefetch_count='10'"),
        (AMQP, {"prefetch_count": 0}, "prefetch_count=0"),
        (AMQP, {"publish_timeout": -1}, "publish_timeout=-1"),
        (AMQP, {"queues": "tasks"}, "queues='tasks'"),
        (AMQP, {"delay_levels": 50}, "delay_levels=50"),
        (AMQP, {"queue_type": "bogus"}, "bogus"),
        (REDIS, {"idle_timeout": "30s"}, "idle_timeout='30s'"),
        (REDIS, {"max_delivery_attempts": 0}, "max_delivery_attempts=0"),
        ("memory://", {"max_async_tasks": 0}, "max_async_tasks=0"),
    ],
)
def test_wrong_types_and_ranges_are_refused_at_build(
    url: str, options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        make_broker(url, **options)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("path", ["/abc", "/0x1", "/1/2"])
def test_a_redis_database_that_is_not_a_number_is_refused(path: str) -> None:
    with pytest.raises(InvalidURLError, match="the database must be a number"):
        make_broker(f"redis://127.0.0.1:6379{path}")
    with pytest.raises(InvalidURLError, match="the database must be a number"):
        make_broker("memory://", result_url=f"redis://127.0.0.1:6379{path}")


def test_a_redis_url_query_value_redis_cannot_read_is_refused() -> None:
    with pytest.raises(InvalidURLError, match="Invalid value for 'socket_timeout'"):
        make_broker(f"{REDIS}?socket_timeout=soon")
