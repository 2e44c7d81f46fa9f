"""make_broker: scheme dispatch, clear errors, no password leaks; settings; guarded extras."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from taskiq_kit import InvalidURLError, KitSettings, MemoryBroker, MissingExtraError, make_broker
from taskiq_kit._compat import require
from taskiq_kit.results.codec import PickleCodec
from taskiq_kit.urls import redact

SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://user:s3cr3t-pa55@example.com", "unsupported scheme 'http'"),
        ("kafka://user:s3cr3t-pa55@host:9092", "unsupported scheme 'kafka'"),
        ("localhost:5672", "no scheme"),
        ("guest:s3cr3t-pa55@localhost", "no scheme"),
        ("", "non-empty"),
        ("amqp://user:s3cr3t-pa55@host:99999/", "malformed"),
        ("amqp://user:s3cr3t-pa55@/vhost", "no host"),
    ],
)
def test_bad_url_errors_name_schemes_and_hide_password(url: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError, match=fragment) as caught:
        make_broker(url)
    message = str(caught.value)
    assert SECRET not in message
    assert SECRET not in repr(caught.value)
    assert "amqp://, amqps://, redis://, rediss://, redis+cluster://" in message
    assert "redis+sentinel://, rediss+sentinel://, memory://" in message
    assert isinstance(caught.value, ValueError)


def test_non_string_url() -> None:
    with pytest.raises(InvalidURLError, match="expected a non-empty URL string"):
        make_broker(42)  # type: ignore[arg-type]


def test_bad_result_url() -> None:
    with pytest.raises(InvalidURLError, match="unsupported scheme 'mysql'") as caught:
        make_broker("memory://", result_url=f"mysql://root:{SECRET}@localhost/db")
    assert SECRET not in str(caught.value)
    assert "postgresql://" in str(caught.value)


def test_memory_scheme_builds_embedded_broker() -> None:
    broker = make_broker("MEMORY://")
    assert isinstance(broker, MemoryBroker)
    assert "memory://" in repr(broker)


def test_unknown_option_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        make_broker("memory://", no_such_option=1)


def test_redact() -> None:
    assert (
        redact(f"amqp://guest:{SECRET}@localhost:5672/vh") == "amqp://guest:***@localhost:5672/vh"
    )
    assert redact("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact(f"redis://:{SECRET}@[::1]:6379") == "redis://:***@[::1]:6379"


def test_settings_from_env_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKIQ_KIT_BROKER_URL", f"amqp://guest:{SECRET}@rabbit:5672/")
    monkeypatch.setenv("TASKIQ_KIT_RESULT_TTL", "120")
    settings = KitSettings()
    assert settings.result_ttl == 120
    assert settings.broker_url.get_secret_value().startswith("amqp://")
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_settings_reject_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKIQ_KIT_RESULT_TTL", "-5")
    with pytest.raises(ValueError, match="result_ttl"):
        KitSettings()


def test_password_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="taskiq_kit")
    make_broker("memory://")
    with pytest.raises(InvalidURLError):
        make_broker(f"ftp://u:{SECRET}@h")
    assert SECRET not in caplog.text


def test_missing_extra_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install taskiq-kit\[rabbit\]") as caught:
        require("no_such_module_for_kit_tests", extra="rabbit", feature="the RabbitMQ broker")
    assert isinstance(caught.value, ImportError)


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [("taskiq_kit.rabbit", "aio_pika", "rabbit"), ("taskiq_kit.redis", "redis", "redis")],
)
def test_transport_import_without_its_extra(module: str, blocked: str, extra: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert f"pip install taskiq-kit[{extra}]" in out.stdout


def test_result_options_reach_the_result_backend() -> None:
    broker = make_broker("memory://", result_options={"serializer": "pickle"})
    assert isinstance(broker.result_backend.codec, PickleCodec)
    with pytest.raises(TypeError, match="no_such_result_option"):
        make_broker("memory://", result_options={"no_such_result_option": 1})


def test_a_result_backend_option_points_to_result_url_and_result_options() -> None:
    with pytest.raises(TypeError, match="result_options="):
        make_broker("memory://", result_backend=object())
