"""The shared delay / eta / expires parser: every bad-value class, and the good ones."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from taskiq_kit import InvalidDelayError, TaskiqKitError, timing
from taskiq_kit.labels import (
    MAX_HORIZON,
    Timing,
    label_float,
    parse_expires,
    parse_instant,
    parse_seconds,
    read_timing,
    resolve_timing,
)

NOW = 1_800_000_000.0  # 2027-01-15


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (-1, "must be >= 0"),
        (-0.001, "must be >= 0"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        ("nan", "finite"),
        ("soon", "expected a number"),
        ("", "expected a number"),
        (None, "expected a number"),
        ([5], "expected a number"),
        (True, "boolean"),
        (MAX_HORIZON + 1, "10 years"),
        (timedelta(days=-1), "must be >= 0"),
        (timedelta(days=3700), "10 years"),
    ],
)
def test_bad_delay(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidDelayError, match=fragment) as caught:
        parse_seconds("delay", value)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TaskiqKitError)
    assert repr(value)[:20] in str(caught.value), "the message names the bad value"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0.0), (1.5, 1.5), ("2.5", 2.5), (" 3 ", 3.0), (timedelta(minutes=2), 120.0)],
)
def test_good_delay(value: Any, expected: float) -> None:
    assert parse_seconds("delay", value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2030-01-01T00:00:00", "no time zone"),
        (datetime(2030, 1, 1), "no time zone"),
        ("next tuesday", "ISO-8601"),
        ("2030-13-01T00:00:00+00:00", "ISO-8601"),
        (-5, "before 1970"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (NOW + MAX_HORIZON + 10, "10 years"),
        ("2099-01-01T00:00:00Z", "10 years"),
        (True, "boolean"),
        (object(), "epoch seconds"),
    ],
)
def test_bad_eta(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidDelayError, match=fragment):
        parse_instant("eta", value, now=NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW + 10, NOW + 10),
        (str(NOW + 10), NOW + 10),
        ("2027-01-15T08:00:00Z", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()),
        ("2027-01-15T09:00:00+01:00", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()),
        ("2027-01-15 08:00:00+00:00", datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp()),
        (
            datetime(2027, 1, 15, 8, tzinfo=timezone.utc),
            datetime(2027, 1, 15, 8, tzinfo=timezone.utc).timestamp(),
        ),
        (NOW - 3600, NOW - 3600),  # a past eta means "now"
    ],
)
def test_good_eta(value: Any, expected: float) -> None:
    assert parse_instant("eta", value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "must be > 0"),
        (-3, "must be >= 0"),
        (math.nan, "finite"),
        ("never", "ISO-8601"),
        ("2030-01-01T00:00:00", "no time zone"),
        (5e8, "10 years"),  # between the 10-year horizon and the epoch threshold: ambiguous
        (True, "boolean"),
    ],
)
def test_bad_expires(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidDelayError, match=fragment):
        parse_expires(value, now=NOW)


def test_expires_relative_and_absolute() -> None:
    assert parse_expires(60, now=NOW) == NOW + 60
    assert parse_expires("60", now=NOW) == NOW + 60
    assert parse_expires(timedelta(hours=1), now=NOW) == NOW + 3600
    assert parse_expires(NOW + 120, now=NOW) == NOW + 120  # epoch seconds >= 1e9
    absolute = datetime(2027, 1, 15, 8, tzinfo=timezone.utc)
    assert parse_expires("2027-01-15T08:00:00Z", now=NOW - 10) == absolute.timestamp()


def test_resolve_rules() -> None:
    assert resolve_timing({}, now=NOW) == Timing()
    assert resolve_timing({"delay": 5}, now=NOW) == Timing(due_at=NOW + 5)
    # delay and eta together: the later wins (a retry of a task first kicked with an eta).
    assert resolve_timing({"delay": 5, "eta": NOW - 100}, now=NOW).due_at == NOW + 5
    assert resolve_timing({"delay": 5, "eta": NOW + 100}, now=NOW).due_at == NOW + 100
    assert resolve_timing({"expires": 10}, now=NOW).expires_at == NOW + 10
    # An expiry fixed at the first kick survives re-kicks.
    assert resolve_timing({"expires": 10, "kit_expires_at": NOW + 3}, now=NOW).expires_at == NOW + 3
    with pytest.raises(InvalidDelayError, match="expire before it is due"):
        resolve_timing({"delay": 10, "expires": 10}, now=NOW)
    with pytest.raises(InvalidDelayError, match="lies in the past"):
        resolve_timing({"expires": "2020-01-01T00:00:00Z"}, now=NOW)


def test_read_timing_never_raises() -> None:
    assert read_timing({"kit_due_at": "12.5", "kit_expires_at": 20}) == Timing(12.5, 20.0)
    assert read_timing({"kit_due_at": "garbage", "kit_expires_at": "nan"}) == Timing()
    assert read_timing({"kit_due_at": True, "kit_expires_at": [1]}) == Timing()
    assert label_float(None) is None
    assert Timing(due_at=NOW + 2).delay_from(NOW) == 2
    assert Timing(due_at=NOW - 2).delay_from(NOW) == 0
    assert Timing(expires_at=NOW).expired(NOW)
    assert not Timing().expired(NOW)


def test_timing_helper() -> None:
    labels = timing(delay=timedelta(seconds=30), expires=600)
    assert labels["delay"] == 30.0
    assert labels["expires"] == pytest.approx(600, abs=1)
    eta = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert timing(eta=eta)["eta"] == pytest.approx(eta.timestamp())
    with pytest.raises(InvalidDelayError):
        timing(delay=-1)
    with pytest.raises(InvalidDelayError, match="expire before"):
        timing(delay=60, expires=30)
