"""Loki's default limits applied before sending, each counted; too-old records reported."""

from __future__ import annotations

import pytest

from shipper.models import LogRecord
from shipper.sinks.loki import limits
from tests.loki_mock import LokiMock
from tests.shipper.sinks.loki.conftest import HOUR, NOW_NS, SECOND, metric, record


def _adjusted(source: str, reason: str) -> float:
    return metric("shipper_records_adjusted_total", source=source, reason=reason)


def test_long_line_is_truncated_with_a_visible_marker(make_sink) -> None:
    mock = LokiMock(max_line_bytes=limits.MAX_LINE_BYTES)  # Loki's default limit, enforced by the mock
    sink = make_sink(mock)
    long_line = "é" * (limits.MAX_LINE_BYTES // 2 + 10)  # 2 bytes per char: over the limit
    before = _adjusted("lim-trunc", "truncated")

    result = sink.push([record(1, long_line), record(1, "short")], source="lim-trunc")

    assert result.accepted == 2 and result.rejected == []
    stored = {line for _, _, line, _ in mock.entries()}
    [cut] = [line for line in stored if line != "short"]
    assert len(cut.encode()) <= limits.MAX_LINE_BYTES
    assert cut.startswith("éé")
    kept, marker, _ = cut.partition(" …[truncated by shipper: ")
    assert marker and set(kept) == {"é"}
    cut_bytes = len(long_line.encode()) - len(kept.encode())
    assert cut == kept + limits.TRUNCATION_MARKER.format(cut=cut_bytes)  # says how much is missing
    assert _adjusted("lim-trunc", "truncated") - before == 1


def test_configured_smaller_line_limit(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock, max_line_bytes=2048)
    sink.push([record(1, "x" * 5000)], source="gcs")
    [(_, _, line, _)] = mock.entries()
    assert len(line.encode()) <= 2048 and "[truncated by shipper: " in line


def test_more_than_15_labels_keeps_the_schema_labels_and_moves_the_rest_to_metadata(make_sink) -> None:
    mock = LokiMock(max_label_names=15)
    sink = make_sink(mock)
    labels = {f"extra_{i:02d}": f"v{i}" for i in range(14)}
    labels |= {"source": "gcs", "service_name": "trades", "level": "warn", "bucket": "b"}
    before = _adjusted("lim-labels", "labels_dropped")

    result = sink.push([record(1, "many labels", labels, object="o1")], source="lim-labels")

    assert result.accepted == 1
    [(sent_labels, _, _, metadata)] = mock.entries()
    assert len(sent_labels) == 15
    assert {"source", "service_name", "level", "bucket"} <= set(sent_labels)
    moved = {name: labels[name] for name in labels if name not in sent_labels}
    assert len(moved) == 3 and metadata == {"object": "o1", **moved}
    assert _adjusted("lim-labels", "labels_dropped") - before == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [("service.name", "service_name"), ("9lives", "_9lives"), ("k8s-app", "k8s_app"), ("ok_name", "ok_name"),
     ("", "_"), ("ünï", "_n_")],
)
def test_label_names_are_sanitised(make_sink, name: str, expected: str) -> None:
    assert limits.sanitise_label_name(name) == expected
    mock = LokiMock()
    before = _adjusted("lim-sanitise", "labels_sanitised")
    make_sink(mock).push([record(1, "x", {"source": "gcs", name: "v"})], source="lim-sanitise")
    [(labels, _, _, _)] = mock.entries()
    assert labels == {"source": "gcs", expected: "v"}
    assert _adjusted("lim-sanitise", "labels_sanitised") - before == (0 if name == expected else 1)
    mock.assert_clean()


def test_labels_with_empty_values_are_absent_and_a_stream_never_has_none(make_sink) -> None:
    mock = LokiMock()
    make_sink(mock).push([record(1, "a", {"source": "gcs", "pod": ""}), record(1, "b", {})], source="gcs")
    assert sorted((line, labels) for labels, _, line, _ in mock.entries()) == [
        ("a", {"source": "gcs"}), ("b", {"service_name": limits.FALLBACK_SERVICE_NAME})
    ]


def test_future_timestamps_are_clamped_and_the_original_kept(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock)
    future = LogRecord(NOW_NS + 11 * 60 * SECOND, "from the future", {"source": "gcs"}, {"object": "o"})
    near = LogRecord(NOW_NS + 9 * 60 * SECOND, "slightly ahead", {"source": "gcs"}, {})
    before = _adjusted("lim-clamp", "timestamp_clamped")

    sink.push([future, near], source="lim-clamp")

    got = {line: (ts, metadata) for _, ts, line, metadata in mock.entries()}
    assert got["from the future"] == (NOW_NS, {"object": "o", "original_timestamp": str(future.ts_ns)})
    assert got["slightly ahead"] == (near.ts_ns, {})
    assert _adjusted("lim-clamp", "timestamp_clamped") - before == 1


def test_records_older_than_max_age_are_reported_not_dropped(make_sink, caplog) -> None:
    mock = LokiMock()
    sink = make_sink(mock, max_age_hours=24)
    old = record(25 * 3600, "too old line", object="o", line_no="7")
    young = record(23 * 3600, "young enough")
    before = metric("shipper_records_skipped_total", source="lim-old", reason="too_old")

    result = sink.push([old, young], source="lim-old")

    assert result.accepted == 1
    assert [(r.record, r.reason) for r in result.rejected] == [(old, "too_old")]
    assert [line for _, _, line, _ in mock.entries()] == ["young enough"]
    assert metric("shipper_records_skipped_total", source="lim-old", reason="too_old") - before == 1
    assert any("too_old" in r.getMessage() and "line_no=7" in r.getMessage() for r in caplog.records)
    assert not any("too old line" in r.getMessage() for r in caplog.records)


def test_max_age_can_be_disabled(make_sink) -> None:
    mock = LokiMock()
    result = make_sink(mock, max_age_hours=None).push([record(10_000 * 3600, "ancient")], source="gcs")
    assert result.accepted == 1 and mock.entries()[0][1] == NOW_NS - 10_000 * HOUR + 7


def test_invalid_metadata_is_repaired(make_sink) -> None:
    mock = LokiMock()
    bad = LogRecord(NOW_NS - SECOND, "x", {"source": "gcs"}, {"line.no": 5, "ok": "v"})  # type: ignore[dict-item]
    make_sink(mock).push([bad], source="gcs")
    assert mock.entries()[0][3] == {"line_no": "5", "ok": "v"}


def test_lone_surrogates_are_replaced_and_counted(make_sink) -> None:
    mock = LokiMock()
    before = _adjusted("lim-utf8", "invalid_utf8")
    make_sink(mock).push([record(1, "bad \udc80 byte")], source="lim-utf8")
    assert mock.entries()[0][2] == "bad ? byte"
    assert _adjusted("lim-utf8", "invalid_utf8") - before == 1
