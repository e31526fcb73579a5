"""Reading Loki's 400 bodies (formats from Loki's pkg/validation and pkg/ingester)."""

from __future__ import annotations

from shipper.sinks.loki import rejections
from shipper.sinks.loki.encode import Entry, StreamLabels

SECOND = 1_000_000_000
T0 = 1_704_067_200 * SECOND  # 2024-01-01T00:00:00Z

A = StreamLabels({"app": "a", "level": "info"})
B = StreamLabels({"app": "b"})


def _entry(index: int, stream: StreamLabels, ts_ns: int, line: str = "x") -> Entry:
    return Entry(index, stream, ts_ns, line, {}, len(line), len(line))


def test_time_formats() -> None:
    assert rejections.parse_go_time("2024-01-01 00:00:00 +0000 UTC") == T0
    assert rejections.parse_go_time("2024-01-01 00:00:00.000000123 +0000 UTC") == T0 + 123
    assert rejections.parse_go_time("2024-01-01 02:00:00.5 +0200 CEST") == T0 + SECOND // 2
    assert rejections.parse_rfc3339("2024-01-01T00:00:00Z") == T0
    assert rejections.parse_rfc3339("2024-01-01T01:00:00+01:00") == T0
    assert rejections.parse_go_time("yesterday") is None


def test_label_strings_parse_like_lokis() -> None:
    assert rejections.parse_labels('{a="b", c="d \\"q\\" \\\\ \\n"}') == frozenset(
        {("a", "b"), ("c", 'd "q" \\ \n')}
    )
    assert rejections.parse_labels("not labels") is None


def test_new_ingester_format_names_entries_of_the_trailer_stream() -> None:
    entries = [_entry(0, A, T0 + 5), _entry(1, A, T0 + 9), _entry(2, B, T0 + 5)]
    body = (
        "entry with timestamp 2024-01-01 00:00:00.000000005 +0000 UTC ignored, "
        "reason: 'entry out of order',\n"
        'user \'fake\', total ignored: 1 out of 2 for stream: {app="a", level="info"}'
    )
    assert rejections.match_rejections(body, entries) == {0: "out_of_order"}


def test_too_far_behind_cutoff_rejects_every_older_entry_of_that_stream() -> None:
    entries = [_entry(i, A, T0 + i * SECOND) for i in range(20)] + [_entry(99, B, T0)]
    listed = "\n".join(
        f"entry with timestamp 2024-01-01 00:00:{i:02d} +0000 UTC ignored, reason: 'entry too far behind, "
        f"entry timestamp is: 2024-01-01T00:00:{i:02d}Z, "
        "oldest acceptable timestamp is: 2024-01-01T00:00:15Z',"
        for i in range(10)
    )
    body = listed + '\nuser \'fake\', total ignored: 15 out of 20 for stream: {app="a", level="info"}'
    assert rejections.match_rejections(body, entries) == {i: "too_far_behind" for i in range(15)}


def test_validation_messages() -> None:
    entries = [
        _entry(0, A, T0 - 10 * SECOND),
        _entry(1, A, T0 + 10 * SECOND, "y" * 300),
        _entry(2, B, T0 + 10 * SECOND),
        _entry(3, A, T0 + 10 * SECOND, "short"),
    ]
    body = "\n".join([
        "entry for stream '{app=\"a\", level=\"info\"}' has timestamp too old: 2023-12-31T23:59:50Z, "
        "oldest acceptable timestamp is: 2024-01-01T00:00:00Z",
        "Max entry size '256' bytes exceeded for stream '{app=\"a\", level=\"info\"}' while adding an entry "
        "with length '300' bytes",
        "entry for stream '{app=\"b\"}' has 16 label names; limit 15",
    ])
    assert rejections.match_rejections(body, entries) == {
        0: "too_old", 1: "line_too_long", 2: "invalid_labels"
    }


def test_unknown_stream_or_body_matches_nothing() -> None:
    entries = [_entry(0, A, T0)]
    assert rejections.match_rejections("something else entirely", entries) == {}
    assert rejections.match_rejections("entry for stream '{app=\"zzz\"}' has 16 label names; limit 15",
                                       entries) == {}


def test_stream_with_labels_added_by_loki_still_matches() -> None:
    """Loki 3 may add service_name to a stream that lacks it before reporting it."""
    entries = [_entry(0, B, T0)]
    body = "entry for stream '{app=\"b\", service_name=\"b\"}' has 16 label names; limit 15"
    assert rejections.match_rejections(body, entries) == {0: "invalid_labels"}


def test_classify_is_bounded() -> None:
    for message, reason in [
        ("entry too far behind, entry timestamp is", "too_far_behind"),
        ("has timestamp too new", "too_new"),
        ("stream '{a=\"b\"}' has label value too long", "invalid_labels"),
        ("stream '{a=\"b\"}' has structured metadata too large", "structured_metadata"),
        ("whatever", "other"),
    ]:
        assert rejections.classify(message) == reason
        assert reason in rejections.REASONS


def test_older_too_old_form_and_too_new_name_the_second() -> None:
    entries = [_entry(0, A, T0 + 300), _entry(1, A, T0 + SECOND), _entry(2, B, T0 + 400)]
    old = "entry for stream '{app=\"a\", level=\"info\"}' has timestamp too old: 2024-01-01T00:00:00Z"
    assert rejections.match_rejections(old, entries) == {0: "too_old"}
    new = "entry for stream '{app=\"b\"}' has timestamp too new: 2024-01-01T00:00:00Z"
    assert rejections.match_rejections(new, entries) == {2: "too_new"}


def test_request_errors_are_recognised() -> None:
    assert rejections.is_request_error("couldn't parse push request: proto: illegal wireType 7")
    assert not rejections.is_request_error("entry for stream '{a=\"b\"}' has 16 label names; limit 15")
