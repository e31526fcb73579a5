from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shipper import records
from shipper.records import format_rfc3339_ns, level_of, parse_timestamp_ns, timestamp_from_fields

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T00:00:00Z", T0 * 10**9),
        ("2026-01-01T00:00:00.123456789Z", T0 * 10**9 + 123_456_789),
        ("2026-01-01T01:00:00.5+01:00", T0 * 10**9 + 500_000_000),
        ("2026-01-01 00:00:00", T0 * 10**9),
        (T0, T0 * 10**9),
        (T0 * 1000, T0 * 10**9),
        (T0 * 10**6, T0 * 10**9),
        (T0 * 10**9, T0 * 10**9),
        (T0 + 0.25, T0 * 10**9 + 250_000_000),
        (str(T0), T0 * 10**9),
        (datetime(2026, 1, 1, tzinfo=UTC), T0 * 10**9),
        ("yesterday", None),
        ("", None),
        (True, None),
        (None, None),
        (-5, None),
        (float("inf"), None),
        (float("nan"), None),
        (T0 * 10**9 + 0.0, T0 * 10**9),
        ({"x": 1}, None),
        # epoch text is exact, in every unit (a float blurs ms with a fraction by 64 ns)
        (f"{T0 * 1000 + 565}.0", T0 * 10**9 + 565_000_000),
        (f"{T0 * 1000 + 565}.00001", T0 * 10**9 + 565_000_010),
        (f"{T0}.123456789123", T0 * 10**9 + 123_456_789),
        (f"{T0 * 10**6 + 7}.5", T0 * 10**9 + 7_500),
        ("-5", None),
        ("9" * 5000, None),  # no time (and past Python's int() limit for text)
        ("9" * 5000 + ".5", None),
    ],
)
def test_parse_timestamp(value: object, expected: int | None) -> None:
    assert parse_timestamp_ns(value) == expected


def test_first_usable_field_wins() -> None:
    record = {"timestamp": "garbage", "created_at": T0}
    assert timestamp_from_fields(record, ["timestamp", "created_at"]) == T0 * 10**9
    assert timestamp_from_fields({"other": 1}, ["timestamp"]) is None


@pytest.mark.parametrize(
    ("record", "line", "expected"),
    [
        ({"level": "ERROR"}, "", "error"),
        ({"level": "Warn"}, "", "warn"),
        ({"level": " info "}, "", "info"),
        ({"level": None, "severity": "error"}, "", "unknown"),  # the first level field present decides
        ({"level": ["error"]}, "", "unknown"),
        ({"severity": "Warning"}, "", "warn"),
        ({"levelname": "CRITICAL"}, "", "critical"),
        ({"level": "verbose"}, "", "unknown"),
        ({"level": 3}, "", "unknown"),
        ({"msg": "x"}, "", "unknown"),
        (None, "ERROR something broke", "error"),
        (None, "[warn] disk almost full", "warn"),
        (None, "level=info msg=ok", "info"),
        (None, "2026-01-01T00:00:00Z DEBUG starting", "debug"),
        (None, "the error rate rose", "unknown"),
        (None, "", "unknown"),
    ],
)
def test_level(record: dict[str, object] | None, line: str, expected: str) -> None:
    assert level_of(record, line) == expected


def test_format_rfc3339_ns() -> None:
    assert format_rfc3339_ns(T0 * 10**9 + 5) == "2026-01-01T00:00:00.000000005Z"


_REF = 1_796_479_130_000_000_000  # 2026-12-05T13:58:50Z, an object's base time


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2026-12-05T09:56:21.217Z INFO: reflection", "2026-12-05T09:56:21.217000000Z"),
        ("2026-12-05 09:56:21,217 ERROR x", "2026-12-05T09:56:21.217000000Z"),
        ("[2026-12-05 09:56:21] x", "2026-12-05T09:56:21.000000000Z"),
        ("2026-12-05T09:56:21+02:00 x", "2026-12-05T07:56:21.000000000Z"),
        ("2026-12-05T09:56:21.123456789Z", "2026-12-05T09:56:21.123456789Z"),
        ("Dec  5 09:56:21 host app: x", "2026-12-05T09:56:21.000000000Z"),
        ("Dec 31 23:00:00 host app: x", "2025-12-31T23:00:00.000000000Z"),  # not days ahead: last year
        ("2026-12-05x", None),
        ("2026-13-05T09:56:21Z x", None),
        ("ERROR 2026-12-05T09:56:21Z", None),
        ("12 items", None),
    ],
)
def test_timestamp_from_text(line: str, expected: str | None) -> None:
    found = records.timestamp_from_text(line, _REF)
    assert (None if found is None else records.format_rfc3339_ns(found)) == expected
    assert records.timestamp_from_text(line, _REF) == found  # deterministic: resends deduplicate
