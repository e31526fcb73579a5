"""Loki's 400 partial success: refused entries are isolated and reported, the rest is stored."""

from __future__ import annotations

import logging

import pytest

from shipper.models import LogRecord
from shipper.sinks import SinkUnavailable
from tests.loki_mock import LokiMock, Reply, go_time_string
from tests.shipper.sinks.loki.conftest import HOUR, NOW_NS, SECOND, metric, record

GCS = {"source": "gcs", "service_name": "trades", "level": "info"}


def _meta(i: int) -> dict[str, str]:
    return {"object": "trades/2026/01/01.jsonl", "line_no": str(i)}


@pytest.mark.parametrize("knows_newest", [False, True], ids=["refused-then-late", "routed-late-at-once"])
def test_too_far_behind_entries_go_to_their_late_stream(make_sink, caplog, knows_newest: bool) -> None:
    """Entries an hour behind the stream's newest are not lost (they used to be rejected): they go
    to the same labels plus late_hour=<their hour>, which Loki's per-stream window does not
    compare with the live stream. A sink that pushed the newest entry itself routes them at once;
    one that did not (another process, an earlier run) learns it from Loki's 400."""
    mock = LokiMock(max_behind_ns=1 * HOUR)  # Loki's default: half of max_chunk_age (2h)
    first = make_sink(mock)
    assert first.push([record(60, "newest", GCS, **_meta(0))], source="src-behind").accepted == 1
    sink = first if knows_newest else make_sink(mock)

    late = [LogRecord(NOW_NS - (3 * HOUR) - i * SECOND, f"secret payload {i}", dict(GCS), _meta(100 + i))
            for i in range(15)]  # more than the 10 entries Loki names per stream
    fresh = [LogRecord(NOW_NS - 30 * SECOND + i, f"fresh {i}", dict(GCS), _meta(200 + i)) for i in range(5)]
    late_before = metric("shipper_records_adjusted_total", source="src-behind", reason="late_stream")
    pushes_before = len(mock.requests)

    with caplog.at_level(logging.WARNING, logger="shipper.sinks.loki.client"):
        result = sink.push(late + fresh, source="src-behind")

    assert result.accepted == 20 and result.rejected == []
    streams = mock.streams()
    live = frozenset(GCS.items())
    assert {line for _, line in streams[live]} == {"newest"} | {f"fresh {i}" for i in range(5)}
    late_streams = {labels: entries for labels, entries in streams.items() if labels != live}
    assert {dict(labels)["late_hour"] for labels in late_streams} == {"2025-12-31T20", "2025-12-31T21"}
    assert all(labels - {("late_hour", dict(labels)["late_hour"])} == live for labels in late_streams)
    assert sorted(line for entries in late_streams.values() for _, line in entries) == sorted(
        r.line for r in late)
    assert metric("shipper_records_adjusted_total", source="src-behind", reason="late_stream") \
        - late_before == 15
    # late streams share a request, the live stream has its own; Loki's 400 named all it refused
    # (`total ignored: 15`), so the live entries it stored were not sent again
    assert len(mock.requests) - pushes_before == 2
    sent_fresh = [e.line for push in mock.requests for s in push.streams for e in s.entries
                  if "fresh" in e.line]
    assert len(sent_fresh) == 5
    assert not any("secret payload" in r.getMessage() for r in caplog.records)  # never the content


def test_lokis_too_old_validation_isolates_old_entries(make_sink) -> None:
    mock = LokiMock(reject_older_than_ns=NOW_NS - 2 * HOUR)  # Loki stricter than our max age
    sink = make_sink(mock)
    records = [record(3 * 3600, "old 1"), record(10, "ok 1"), record(4 * 3600, "old 2"), record(5, "ok 2")]

    result = sink.push(records, source="gcs")

    assert result.accepted == 2
    assert sorted((r.record.line, r.reason) for r in result.rejected) == [
        ("old 1", "too_old"), ("old 2", "too_old")
    ]
    assert {line for _, _, line, _ in mock.entries()} == {"ok 1", "ok 2"}


def test_line_too_long_for_lokis_configured_limit(make_sink) -> None:
    mock = LokiMock(max_line_bytes=2000)  # a Loki configured below the default 256 KB
    sink = make_sink(mock)
    records = [record(3, "a" * 2500), record(2, "short"), record(1, "b" * 1999)]

    result = sink.push(records, source="gcs")

    assert [(r.record.line[:1], r.reason) for r in result.rejected] == [("a", "line_too_long")]
    assert {line[:5] for _, _, line, _ in mock.entries()} == {"short", "bbbbb"}


def test_whole_stream_refused_for_its_labels(make_sink) -> None:
    mock = LokiMock(max_label_names=3)  # stricter than the sink's 15
    sink = make_sink(mock)
    wide = {"source": "gcs", "service_name": "x", "level": "info", "bucket": "b"}
    result = sink.push([record(2, "wide 1", wide), record(1, "wide 2", wide), record(1, "narrow", GCS)],
                       source="gcs")
    assert sorted((r.record.line, r.reason) for r in result.rejected) == [
        ("wide 1", "invalid_labels"), ("wide 2", "invalid_labels")
    ]
    assert [line for _, _, line, _ in mock.entries()] == ["narrow"]


def test_unrecognised_400_body_is_bisected_down_to_the_bad_entry(make_sink) -> None:
    mock = LokiMock(reject=lambda labels, ts, line: "computer says no" if line == "poison" else None)
    sink = make_sink(mock)
    records = [record(10 - i, "poison" if i == 5 else f"good {i}") for i in range(8)]
    other_before = metric("shipper_entries_rejected_total", source="gcs", reason="other")

    result = sink.push(records, source="gcs")

    assert [(r.record.line, r.reason) for r in result.rejected] == [("poison", "other")]
    assert result.accepted == 7
    assert {line for _, _, line, _ in mock.entries()} == {f"good {i}" for i in range(8) if i != 5}
    assert metric("shipper_entries_rejected_total", source="gcs", reason="other") - other_before == 1


def test_scripted_partial_body_in_the_older_per_line_format(make_sink) -> None:
    """Loki 2.x put ` for stream: {...}` on every ingester line."""
    records = [record(20, "keep"), record(10, "drop")]
    drop_ts = records[1].ts_ns
    body = (f"entry with timestamp {go_time_string(drop_ts)} ignored, reason: 'entry out of order' "
            'for stream: {level="info", service_name="trades", source="gcs"},\ntotal ignored: 1 out of 2')
    mock = LokiMock()
    mock.script(Reply(400, body=body, store=False))
    result = make_sink(mock).push(records, source="gcs")

    assert [(r.record.line, r.reason) for r in result.rejected] == [("drop", "out_of_order")]
    assert [line for _, _, line, _ in mock.entries()] == ["keep"]
    assert mock.push_attempts == 2 and mock.requests[1].entry_count == 1


def test_malformed_request_answer_is_not_blamed_on_entries(make_sink) -> None:
    mock = LokiMock()
    mock.script(Reply(400, body="couldn't parse push request: snappy: corrupt input"))
    with pytest.raises(SinkUnavailable, match="could not read"):
        make_sink(mock).push([record(1, "x"), record(2, "y")], source="gcs")


def test_413_splits_the_batch(make_sink) -> None:
    mock = LokiMock()
    mock.script(Reply(413, body="request entity too large"))
    result = make_sink(mock).push([record(3, "a"), record(2, "b"), record(1, "c")], source="gcs")
    assert result.accepted == 3 and result.rejected == []
    assert [p.entry_count for p in mock.requests] == [3, 1, 2]
