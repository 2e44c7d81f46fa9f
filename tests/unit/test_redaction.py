"""No text the kit produces for a URL contains its password, whatever the password holds.

A password with '/', '?', '#' or '@' makes URL parsers end the host early and show the rest of
it as a path, query or fragment; the kit must hide it whatever a parser made of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskiq_kit import make_broker, make_result_backend
from taskiq_kit.exceptions import InvalidURLError, TaskiqKitError
from taskiq_kit.urls import BROKER_SCHEMES, RESULT_SCHEMES, parse_url, redact, scrub

#: A token no URL, message or repr of the kit contains by itself.
MARK = "Qv7Zk"
PATHS = {"amqp": "vh", "redis": "0", "postgresql": "test", "memory": ""}
#: Text a parser can trip on, and any other text.
TRICKY = st.text(alphabet="/?#@:%&;= \t[]", max_size=6) | st.text(max_size=6)


@st.composite
def passwords(draw: st.DrawFn) -> str:
    """A password with the mark around every piece: any piece that leaks shows the mark."""
    pieces = draw(st.lists(TRICKY, min_size=1, max_size=4))
    return MARK + MARK.join(pieces) + MARK


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def kit_logs() -> Iterator[list[str]]:
    logger = logging.getLogger("taskiq_kit")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def kit_texts(url: str) -> list[str]:
    """Every error message, repr and log line the kit produces for ``url``."""
    texts = [redact(url)]
    with kit_logs() as lines:
        for accepted in (BROKER_SCHEMES, RESULT_SCHEMES):
            try:
                texts.append(repr(parse_url(url, accepted=accepted)))
            except InvalidURLError as exc:
                texts += [str(exc), repr(exc)]
        try:
            broker = make_broker(url)
        except TaskiqKitError as exc:
            texts += [str(exc), repr(exc)]
        else:
            texts += [repr(broker), str(broker), repr(broker.result_backend)]
        try:
            backend = make_result_backend(url)
        except TaskiqKitError as exc:
            texts += [str(exc), repr(exc)]
        else:
            texts.append(repr(backend))
    return texts + lines


def _assert_hidden(url: str) -> None:
    for text in kit_texts(url):
        assert MARK not in text, f"{text!r} shows part of the password"


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scheme=st.sampled_from(sorted(PATHS)), password=passwords())
def test_a_raw_password_never_shows(scheme: str, password: str) -> None:
    _assert_hidden(f"{scheme}://user:{password}@db.example:1234/{PATHS[scheme]}")


@PROPERTY
@given(scheme=st.sampled_from(sorted(PATHS)), password=passwords())
def test_a_percent_encoded_password_never_shows(scheme: str, password: str) -> None:
    _assert_hidden(f"{scheme}://user:{quote(password, safe='')}@db.example:1234/{PATHS[scheme]}")


@PROPERTY
@given(scheme=st.sampled_from(["redis", "postgresql"]), password=passwords())
def test_a_password_query_parameter_never_shows(scheme: str, password: str) -> None:
    _assert_hidden(
        f"{scheme}://db.example:1234/{PATHS[scheme]}?password={quote(password, safe='')}"
    )


@PROPERTY
@given(password=passwords())
def test_a_driver_message_quoting_the_password_is_scrubbed(password: str) -> None:
    encoded = quote(password, safe="")
    url = f"amqp://user:{encoded}@db.example/"
    assert MARK not in scrub(f"login failed for '{password}' ({encoded})", url)


@pytest.mark.parametrize("char", ["/", "#", "?"])
def test_an_unencoded_special_character_is_refused_with_the_fix(char: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        make_broker(f"amqp://guest:se{char}cret@rabbit.example/")
    message = str(caught.value)
    assert "cret" not in message
    assert "percent-encode" in message
    assert "amqp://guest:***@rabbit.example/" in message


def test_redact_examples() -> None:
    assert redact("amqp://guest:se/cret@host/") == "amqp://guest:***@host/"
    assert redact("redis://tok/en@host:6379/0") == "redis://***@host:6379/0"
    assert redact("redis://host/0?password=x&db=1") == "redis://host/0?password=***&db=1"
    assert redact("postgresql://db/test?sslpassword=x") == "postgresql://db/test?sslpassword=***"
    assert redact("memory://") == "memory://"
