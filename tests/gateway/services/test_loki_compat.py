"""Loki's parameter formats and answer shapes, as the Loki-compatible routes read and redact them."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import Failure, as_api_error
from gateway.services.loki_compat import (
    MalformedAnswer,
    loki_direction,
    loki_duration,
    loki_limit,
    loki_time_ns,
    loki_window,
    redact_label_sets,
    redact_patterns,
    redact_query_data,
    redact_tail_message,
    redact_values,
)
from gateway.services.redact import MASK

NOW = 1_796_479_514_834_189_562
SECOND = 1_000_000_000
HOUR = 3600 * SECOND


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1796479514", 1796479514 * SECOND),  # 10 digits: seconds, as Loki reads it
        ("1796479514834189562", 1796479514834189562),  # longer: nanoseconds (logcli, Grafana)
        ("1796479514.834", 1796479514834 * 1_000_000),  # float seconds, millisecond precision
        ("2026-12-05T14:05:14.834189562Z", 1796479514834189562),
        ("now", NOW),
    ],
)
def test_times_are_read_as_loki_reads_them(text: str, expected: int) -> None:
    assert loki_time_ns("start", text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "1e400.5", "nan.0", "x" * 100, "2026-13-45T00:00:00Z"])
def test_bad_times_are_400s_naming_the_parameter(text: str) -> None:
    with pytest.raises(Failure) as caught:
        loki_time_ns("end", text, NOW)
    assert as_api_error(caught.value).status == 400 and "end" in caught.value.message and caught.value.hint


def test_window_defaults_to_an_hour_before_end_like_loki() -> None:
    window = loki_window(start=None, end=None, since=None, now_ns=NOW, max_hours=24)
    assert (window.start_ns, window.end_ns) == (NOW - HOUR, NOW)
    since = loki_window(start=None, end=str(NOW), since="30m", now_ns=NOW, max_hours=24)
    assert since.start_ns == NOW - HOUR // 2


def test_window_keeps_the_gateways_range_limit() -> None:
    with pytest.raises(Failure) as caught:
        loki_window(start=str(NOW - 25 * HOUR), end=str(NOW), since=None, now_ns=NOW, max_hours=24)
    assert caught.value.code == "range_too_long" and "24h" in caught.value.hint
    with pytest.raises(Failure, match="start is after end"):
        loki_window(start=str(NOW), end=str(NOW - SECOND), since=None, now_ns=NOW, max_hours=24)


def test_direction_step_and_limit_checks() -> None:
    assert loki_direction("BACKWARD") == "backward"  # logcli sends upper case
    assert loki_direction(None) is None
    with pytest.raises(Failure):
        loki_direction("sideways")
    assert loki_duration("step", "60") == "60" and loki_duration("step", "1m30s") == "1m30s"
    for bad in ("0", "-5", "inf", "fortnight"):
        with pytest.raises(Failure):
            loki_duration("step", bad)
    assert loki_limit("1000", 5000) == 1000 and loki_limit(None, 5000) is None
    with pytest.raises(Failure) as caught:
        loki_limit("5001", 5000)
    assert caught.value.code == "limit_too_large"


def test_streams_are_redacted_in_both_encodings() -> None:
    flat: dict[str, Any] = {
        "resultType": "streams",
        "result": [
            {
                "stream": {"source": "gcs", "db_password": "hunter2"},
                "values": [["1", "login password=hunter2"]],
            }
        ],
    }
    shown = redact_query_data(flat)["result"][0]
    assert shown["stream"] == {"source": "gcs", "db_password": MASK}
    assert shown["values"] == [["1", f"login password={MASK}"]]
    categorized: dict[str, Any] = {
        "resultType": "streams",
        "encodingFlags": ["categorize-labels"],
        "result": [
            {
                "stream": {"source": "gcs"},
                "values": [
                    ["1", "plain", {"structuredMetadata": {"api_key": "abc"}, "parsed": {"token": "xyz"}}],
                    ["2", "plain", {}],
                ],
            }
        ],
    }
    values = redact_query_data(categorized)["result"][0]["values"]
    assert values[0][2] == {"structuredMetadata": {"api_key": MASK}, "parsed": {"token": MASK}}
    assert values[1] == ["2", "plain", {}]


def test_metric_series_labels_are_redacted() -> None:
    data = {"resultType": "vector", "result": [{"metric": {"secret": "s3"}, "value": [1.0, "2"]}]}
    assert redact_query_data(data)["result"][0]["metric"] == {"secret": MASK}
    assert redact_query_data({"resultType": "scalar", "result": [1.0, "2"]})["result"] == [1.0, "2"]


def test_values_series_patterns_and_tail_frames() -> None:
    assert redact_values("password", ["a", "b"]) == [MASK]
    assert redact_values("source", ["gcs", "pod"]) == ["gcs", "pod"]
    assert redact_label_sets([{"token": "t", "source": "gcs"}]) == [{"token": MASK, "source": "gcs"}]
    assert redact_patterns([{"pattern": "user <_> password=hunter2", "samples": []}])[0]["pattern"] == (
        f"user <_> password={MASK}"
    )
    frame = {
        "streams": [{"stream": {"source": "gcs"}, "values": [["1", "token=abcdefgh12345678"]]}],
        "dropped_entries": [{"labels": '{source="gcs", password="x"}', "timestamp": "1"}],
    }
    shown = redact_tail_message(frame)
    assert "abcdefgh" not in str(shown) and 'password="x"' not in str(shown)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"resultType": "streams", "result": [{"stream": {"a": 1}, "values": []}]},
        {"resultType": "streams", "result": [{"stream": {}, "values": [["1"]]}]},
        {"resultType": "streams", "result": [{"stream": {}, "values": [["1", 5]]}]},
        {"resultType": "matrix", "result": ["x"]},
        {"resultType": "table", "result": []},
    ],
)
def test_malformed_answers_are_named_not_passed_on(data: Any) -> None:
    with pytest.raises(MalformedAnswer):
        redact_query_data(data)


def test_a_tail_frame_is_cut_at_the_line_budget() -> None:
    from gateway.services.loki_tail import take_lines

    streams = [
        {"stream": {"a": "1"}, "values": [["1", "x"], ["2", "y"]]},
        {"stream": {"a": "2"}, "values": [["3", "z"]]},
    ]
    assert take_lines(streams, 3) == streams
    assert take_lines(streams, 2) == [streams[0]]
    assert take_lines(streams, 1) == [{"stream": {"a": "1"}, "values": [["1", "x"]]}]
    assert take_lines(streams, 0) == []
