"""Accounting of Loki's refusals without a real Loki: the mock answers in the formats recorded from
Loki 3.7.6 (tests/fixtures/loki/push/). The real-Loki counterpart is
tests/shipper/test_partial_accounting_real_loki.py."""

from __future__ import annotations

from shipper.models import LogRecord
from shipper.sinks.loki import rejections
from shipper.sinks.loki.encode import Entry, StreamLabels
from tests.loki_mock import LokiMock
from tests.shipper.sinks.loki.conftest import HOUR, NOW_NS, SECOND

A = {"source": "gcs", "service_name": "trades", "level": "info"}
B = {"source": "gcs", "service_name": "trades", "level": "error"}


def _late_lines(mock: LokiMock) -> set[str]:
    return {line for labels, _, line, _ in mock.entries() if "late_hour" in labels}


def test_more_than_ten_refused_are_settled_from_the_total_without_resending(make_sink) -> None:
    mock = LokiMock(max_behind_ns=HOUR)
    sink = make_sink(mock)
    sink.push([LogRecord(NOW_NS, "newest", dict(A))], source="acct")
    behind = [LogRecord(NOW_NS - 2 * HOUR + i * SECOND, f"behind {i}", dict(A)) for i in range(25)]
    fresh = [LogRecord(NOW_NS - 60 * SECOND + i, f"fresh {i}", dict(A)) for i in range(5)]

    result = sink.push(behind + fresh, source="acct")

    # `total ignored: 25 out of 30` says it all: the 5 fresh are stored and not sent again, the 25
    # refused go to their late_hour stream once
    assert (result.accepted, result.rejected) == (30, [])
    assert sorted(line for _, _, line, _ in mock.entries()) == sorted(
        ["newest", *(r.line for r in fresh), *(r.line for r in behind)])
    assert _late_lines(mock) == {r.line for r in behind}


def test_a_refused_first_stream_is_not_hidden_by_a_fine_last_one(make_sink) -> None:
    """Loki answers 204 to a push whose last stream is fine, whatever it refused before it."""
    mock = LokiMock(max_behind_ns=HOUR)
    sink = make_sink(mock)
    sink.push([LogRecord(NOW_NS, "a newest", dict(A))], source="acct")
    records = [
        *[LogRecord(NOW_NS - 3 * HOUR + i, f"a behind {i}", dict(A)) for i in range(3)],
        LogRecord(NOW_NS - 2 * SECOND, "b fine", dict(B)),
    ]

    result = sink.push(records, source="acct")

    assert (result.accepted, result.rejected) == (4, [])
    assert result.accepted == len(mock.entries()) - 1
    assert _late_lines(mock) == {"a behind 0", "a behind 1", "a behind 2"}


def test_too_old_hidden_behind_too_far_behind_is_found_on_the_resend(make_sink) -> None:
    mock = LokiMock(max_behind_ns=HOUR, reject_older_than_ns=NOW_NS - 100 * HOUR)
    sink = make_sink(mock, max_line_bytes=1024)
    sink.push([LogRecord(NOW_NS, "newest", dict(A))], source="acct")
    records = [
        LogRecord(NOW_NS - 120 * HOUR, "ancient", dict(A)),  # Loki's limit, not the sink's (168 h)
        LogRecord(NOW_NS - 3 * HOUR, "behind", dict(A)),
        LogRecord(NOW_NS - 30 * SECOND, "fresh", dict(A)),
    ]

    result = sink.push(records, source="acct")

    assert [(r.record.line, r.reason) for r in result.rejected] == [("ancient", "too_old")]
    assert result.accepted == 2
    assert {line for _, _, line, _ in mock.entries()} == {"newest", "fresh", "behind"}
    assert _late_lines(mock) == {"behind"}


def test_grouped_label_errors_of_two_streams_are_both_read() -> None:
    a, b = StreamLabels({"app": "a"}), StreamLabels({"app": "b"})
    entries = [Entry(0, a, 1, "x", {}, 1, 1), Entry(1, b, 2, "y", {}, 1, 1)]
    body = ("1 errors like: entry for stream '{app=\"a\"}' has 16 label names; limit 15; "
            "1 errors like: entry for stream '{app=\"b\"}' has 17 label names; limit 15\n")
    verdict = rejections.read_refusal(body, entries)
    assert verdict == rejections.Verdict({0: "invalid_labels", 1: "invalid_labels"}, True)
