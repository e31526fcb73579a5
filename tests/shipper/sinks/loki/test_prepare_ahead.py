"""prepare_push() runs ahead of the push before it (the pipeline encodes batch N+1 while push N is
in flight); push_prepared() must send what push() would have sent given push N's answer."""

from __future__ import annotations

from shipper.models import LogRecord
from tests.loki_mock import LokiMock
from tests.shipper.sinks.loki.conftest import HOUR, NOW_NS, SECOND, metric

LABELS = {"source": "gcs", "service_name": "trades", "level": "info"}


def _records(first_ns: int, count: int, name: str) -> list[LogRecord]:
    return [LogRecord(first_ns + i * SECOND, f"{name} {i}", dict(LABELS), {"line_no": str(i)})
            for i in range(count)]


def test_prepared_then_pushed_sends_the_same_as_push(make_sink) -> None:  # type: ignore[no-untyped-def]
    records = _records(NOW_NS - 60 * SECOND, 30, "same")
    direct, ahead = LokiMock(), LokiMock()
    assert make_sink(direct, batch_max_entries=8).push(records, source="ahead").accepted == 30
    sink = make_sink(ahead, batch_max_entries=8)
    prepared = sink.prepare_push(records, source="ahead")
    assert ahead.push_attempts == 0  # nothing sent while preparing
    assert sink.push_prepared(prepared, source="ahead").accepted == 30
    assert [push.streams for push in ahead.requests] == [push.streams for push in direct.requests]


def test_entries_made_late_by_a_push_acknowledged_after_they_were_prepared_go_late_at_once(
    make_sink,  # type: ignore[no-untyped-def]
) -> None:
    """Batch 2 (history 3 h old) is prepared while batch 1 (newer entries of the same stream) is
    in flight: once batch 1 is acknowledged, batch 2 goes to its late stream without first
    being refused by Loki as too far behind."""
    mock = LokiMock(max_behind_ns=HOUR)
    sink = make_sink(mock)
    newer = _records(NOW_NS - 60 * SECOND, 5, "newer")
    history = _records(NOW_NS - 3 * HOUR, 5, "history")
    late_before = metric("shipper_records_adjusted_total", source="ahead2", reason="late_stream")
    prepared = sink.prepare_push(history, source="ahead2")  # batch 1 not answered yet: routed live
    assert sink.push(newer, source="ahead2").accepted == 5
    result = sink.push_prepared(prepared, source="ahead2")
    assert result.accepted == 5 and not result.rejected
    assert mock.push_attempts == 2  # no refused round trip
    stored = {line: labels for labels, _, line, _ in mock.entries()}
    assert all("late_hour" in stored[f"history {i}"] for i in range(5))
    assert all("late_hour" not in stored[f"newer {i}"] for i in range(5))
    assert metric("shipper_records_adjusted_total", source="ahead2", reason="late_stream") == late_before + 5
