"""Retries on 429 / 5xx / network errors, and the bounded retry budget (fake clock, no real waits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from shipper.sinks import SinkUnavailable
from shipper.sinks.loki.transport import parse_retry_after
from tests.loki_mock import Disconnect, LokiMock, Reply, rate_limited_message
from tests.shipper.sinks.loki.conftest import NOW_NS, FakeTime, metric, record


def test_429_waits_exactly_retry_after_then_ships(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    mock.script(Reply(429, {"Retry-After": "7"}, rate_limited_message("fake", 4 << 20, 1, 10)))
    sink = make_sink(mock)
    retries_before = metric("shipper_push_retries_total", reason="429")

    result = sink.push([record(2, "a"), record(1, "b")], source="gcs")

    assert fake_time.sleeps == [7.0]
    assert result.accepted == 2
    assert mock.push_attempts == 2
    assert sorted(line for _, _, line, _ in mock.entries()) == ["a", "b"]
    assert metric("shipper_push_retries_total", reason="429") - retries_before == 1


def test_retry_after_as_http_date_is_honoured() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(42.0)
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now) == 0.0


def test_500_then_success_backs_off_with_jitter_and_stores_once(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    # the first answer is lost after Loki stored the entries: the resend must not duplicate them
    mock.script(Reply(500, body="internal error", store=True), Reply(503, body="unavailable"))
    sink = make_sink(mock, retry_min_backoff_seconds=1.0, retry_max_backoff_seconds=30.0)

    result = sink.push([record(3, "x", object="o", line_no="1"), record(2, "y")], source="gcs")

    assert result.accepted == 2
    assert len(fake_time.sleeps) == 2
    assert 0.5 <= fake_time.sleeps[0] <= 1.0  # attempt 0: ceiling 1s, full jitter in [ceiling/2, ceiling]
    assert 1.0 <= fake_time.sleeps[1] <= 2.0  # attempt 1: ceiling 2s
    assert mock.push_attempts == 3
    assert len(mock.entries()) == 2 == len(mock.distinct())


def test_backoff_is_capped_by_max_backoff(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    mock.script(*[Reply(502) for _ in range(8)])
    sink = make_sink(mock, retry_min_backoff_seconds=1.0, retry_max_backoff_seconds=4.0,
                     retry_max_total_seconds=1000)
    assert sink.push([record(1, "x")], source="gcs").accepted == 1
    assert len(fake_time.sleeps) == 8
    assert max(fake_time.sleeps) <= 4.0
    assert all(s >= 2.0 for s in fake_time.sleeps[2:])


def test_unreachable_loki_raises_after_the_bounded_retry_time(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    mock.script(*[Disconnect(httpx.ConnectError) for _ in range(1000)])
    sink = make_sink(mock, retry_min_backoff_seconds=0.5, retry_max_backoff_seconds=8.0,
                     retry_max_total_seconds=60.0)
    failures_before = metric("shipper_push_failures_total")
    network_before = metric("shipper_push_retries_total", reason="network")
    started = fake_time.now

    with pytest.raises(SinkUnavailable, match=r"retry budget.*ConnectError"):
        sink.push([record(1, "x")], source="gcs")

    assert fake_time.now - started <= 60.0
    assert sum(fake_time.sleeps) > 60.0 - 8.0  # it used the budget, not given up early
    assert mock.entries() == []
    assert metric("shipper_push_failures_total") - failures_before == 1
    assert metric("shipper_push_retries_total", reason="network") - network_before == len(fake_time.sleeps)


def test_real_unreachable_port_is_a_network_error(fake_time: FakeTime) -> None:
    from shipper.sinks.loki import LokiSink, LokiSinkConfig
    from tests.conftest import free_port

    config = LokiSinkConfig(url=f"http://127.0.0.1:{free_port()}", retry_max_total_seconds=3.0,
                            timeout_seconds=2.0)
    with httpx.Client() as client:
        sink = LokiSink(config, client, sleep=fake_time.sleep, clock=fake_time.clock, now_ns=lambda: NOW_NS)
        with pytest.raises(SinkUnavailable, match="ConnectError"):
            sink.push([record(1, "x")], source="gcs")
        with pytest.raises(SinkUnavailable, match="unreachable"):
            sink.ready()


def test_retry_after_beyond_the_budget_fails_without_sleeping(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    mock.script(Reply(429, {"Retry-After": "3600"}))
    sink = make_sink(mock, retry_max_total_seconds=300.0)
    with pytest.raises(SinkUnavailable, match="HTTP 429"):
        sink.push([record(1, "x")], source="gcs")
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_configuration_errors_fail_at_once(make_sink, fake_time: FakeTime, status: int) -> None:
    mock = LokiMock()
    mock.script(Reply(status, body="no org id" if status == 401 else "nope"))
    sink = make_sink(mock)
    with pytest.raises(SinkUnavailable, match=f"HTTP {status}"):
        sink.push([record(1, "x")], source="gcs")
    assert fake_time.sleeps == []
    assert mock.push_attempts == 1


def test_timeout_after_store_is_retried_and_deduplicated(make_sink, fake_time: FakeTime) -> None:
    mock = LokiMock()
    mock.script(Disconnect(httpx.ReadTimeout, store=True))
    sink = make_sink(mock)
    records = [record(5 - i, f"l{i}") for i in range(5)]
    assert sink.push(records, source="gcs").accepted == 5
    assert len(fake_time.sleeps) == 1
    assert len(mock.distinct()) == 5
    assert sum(p.entry_count for p in mock.requests) == 10  # sent twice, stored once


def test_backoff_after_very_many_attempts_stays_a_number(make_sink) -> None:
    """Tiny backoffs mean many attempts within the budget: 2**attempt must not overflow a float."""
    sink = make_sink(LokiMock(), retry_min_backoff_seconds=1e-300, retry_max_backoff_seconds=5.0)
    assert 2.5 <= sink._transport.backoff(5000) <= 5.0


@pytest.mark.parametrize(
    "backoff", [{"retry_min_backoff_seconds": 0.0}, {"retry_min_backoff_seconds": -1.0},
                {"retry_min_backoff_seconds": 10.0, "retry_max_backoff_seconds": 1.0},
                {"retry_max_total_seconds": -1.0}],
)
def test_unusable_retry_settings_are_configuration_errors(backoff: dict[str, float]) -> None:
    """A zero/negative backoff would busy-loop or make time.sleep() raise mid-run."""
    from shipper.sinks.loki import LokiSinkConfig

    with pytest.raises(ValueError, match="retry"):
        LokiSinkConfig(**backoff)
