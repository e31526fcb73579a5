"""The window an alert's log context is read from: 10 minutes before startsAt to 5 after, never
past now. A settled alert asks for the same window every time, so its summary cache serves the
repeats; a young one asks up to now, so a repeat sees the lines written since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.services.alerts import context_window

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def test_a_settled_alert_reads_a_fixed_window() -> None:
    starts_at = NOW - timedelta(minutes=30)
    expected = (ns(starts_at - timedelta(minutes=10)), ns(starts_at + timedelta(minutes=5)))
    assert context_window(starts_at, NOW) == expected
    assert context_window(starts_at, NOW + timedelta(seconds=7)) == expected


def test_a_young_alert_reads_up_to_now() -> None:
    starts_at = NOW - timedelta(minutes=2)
    assert context_window(starts_at, NOW) == (ns(starts_at - timedelta(minutes=10)), ns(NOW))
    assert context_window(starts_at, NOW + timedelta(seconds=7))[1] == ns(NOW + timedelta(seconds=7))


def test_a_start_far_in_the_future_still_reads_a_minute() -> None:
    starts_at = NOW + timedelta(hours=1)
    start = starts_at - timedelta(minutes=10)
    assert context_window(starts_at, NOW) == (ns(start), ns(start + timedelta(minutes=1)))
