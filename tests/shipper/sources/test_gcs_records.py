"""RecordMaker.line_record reads a JSON object's fields with msgspec and takes the common
timestamp and level cases without calling the shared helpers: its records must be the ones the
helpers give over orjson's dict, for the common cases and the others, and a line that does not
parse carries orjson's error."""

from __future__ import annotations

import orjson
import pytest

from shipper import metrics
from shipper.models import SharedMetadata
from shipper.records import level_from_fields, level_from_text, timestamp_from_fields
from shipper.sources.gcs.records import RecordMaker, StreamLabels, Tally

TIMESTAMP_FIELDS = ("timestamp", "ts", "time")
BASE_NS = 1_700_000_000_000_000_000
SHARED = SharedMetadata({"object": "a.jsonl", "generation": "1"})
LINES = [
    b'{"timestamp": 1772366432.565, "level": "info", "msg": "epoch seconds"}\n',
    b'{"timestamp": 1772366432, "level": "ERROR"}\n',  # an int, not the inlined float
    b'{"timestamp": 1772366432565.0, "level": "Warning"}\n',  # milliseconds
    b'{"timestamp": -1.5, "level": "info"}\n',  # negative: no own timestamp
    b'{"timestamp": null, "ts": 1772366432.25, "level": " info "}\n',  # level needs strip()
    b'{"timestamp": "2026-01-01T00:00:00.123456789Z", "level": "nope"}\n',  # unknown level
    b'{"time": 1772366432.5, "level": null, "severity": "crit"}\n',  # null level: the next field
    b'{"level": 3, "msg": "a number as level"}\n',
    b'{"severity": "debug", "level": "warn"}\n',
    b'{"msg": "ERROR no level field, level from the text"}\n',
    b'{"timestamp": 1e11, "lvl": "fatal"}\n',  # the inlined range's upper bound
    b'{"timestamp": 0.0, "level": "info"}\n',
    # nested and array values, big integers, duplicate keys, whitespace, escapes
    b'{"timestamp": 1772366432.5, "level": {"name": "error"}, "msg": "a nested level"}\n',
    b'{"ts": [1772366432.5], "time": "1772366432", "level": ["error"], "severity": "info"}\n',
    b'{"timestamp": 1772366432.5, "level": "warn", "id": 123456789012345678901234567890}\n',  # > 64 bits
    b'{"timestamp": 1772366432.5, "level": "info", "level": "error"}\n',  # the last duplicate wins
    b'  {"timestamp": "1772366432.565", "level": "INFO"}\n',
    b'{"timestamp": 1772366432.5, "level": "caf\xc3\xa9", "msg": "\\u00e9\\ud83d\\ude00"}\n',
    b'{"timestamp": 18446744073709551615, "level": "info"}\n',
    # what msgspec reads (json_fields.py): escaped keys, an empty object, a field named as no
    # identifier can be; and past its limits, orjson reads the line as before
    b'{"timest\\u0061mp": 1772366432.5, "le\\u0076el": "error"}\n',
    b'{}\n',
    b'{"@timestamp": 1772366432.5, "level": "debug"}\n',
    b'{"timestamp": 1772366432.5, "deep": ' + b'[' * 1000 + b']' * 1000 + b', "level": "warn"}\n',
]
INVALID = [
    b'{"timestamp": 1772366432.5, "level": "info"\n',
    b'{"level": "info"} trailing\n',
    b'{"level": NaN}\n',
    b'{"timestamp": 1e400}\n',
    b'{"msg": "\\ud800"}\n',
    b'[' * 2000 + b']' * 2000 + b'\n',
]


def reference(line: bytes, line_no: int) -> tuple[int, str]:
    """(ts_ns, level) as the shared helpers give them."""
    text = line.rstrip(b"\n").decode()
    fields = orjson.loads(text)
    ts_ns = timestamp_from_fields(fields, TIMESTAMP_FIELDS)
    level = level_from_fields(fields) or level_from_text(text)
    return (BASE_NS + line_no if ts_ns is None else ts_ns), level


@pytest.mark.parametrize("line", LINES)
def test_line_record_matches_the_shared_helpers(line: bytes) -> None:
    labels = StreamLabels("bucket", {})
    maker = RecordMaker(TIMESTAMP_FIELDS, labels, Tally("gcs"))
    record = maker.line_record(SHARED, labels.by_level("logs/"), line, 7, BASE_NS)
    assert record is not None
    ts_ns, level = reference(line, 7)
    assert (record.ts_ns, record.labels["level"]) == (ts_ns, level)


def test_no_timestamp_fields_gives_the_fallback() -> None:
    labels = StreamLabels("bucket", {})
    maker = RecordMaker((), labels, Tally("gcs"))
    record = maker.line_record(SHARED, labels.by_level("logs/"), LINES[0], 7, BASE_NS)
    assert record is not None
    assert (record.ts_ns, record.labels["level"]) == (BASE_NS + 7, "info")


def test_timestamp_fields_named_as_no_identifier_can_be_and_shared_with_a_level_field() -> None:
    labels = StreamLabels("bucket", {})
    maker = RecordMaker(("@timestamp", "event.time", "level"), labels, Tally("gcs"))
    lines = {b'{"@timestamp": 1772366432.5, "level": "warn"}\n': (1772366432_500_000_000, "warn"),
             b'{"event.time": "2026-03-01T12:00:32Z", "lvl": "error"}\n': (1772366432_000_000_000, "error"),
             b'{"level": 1772366432.25}\n': (1772366432_250_000_000, "unknown")}
    for line, expected in lines.items():
        record = maker.line_record(SHARED, labels.by_level("logs/"), line, 7, BASE_NS)
        assert record is not None and (record.ts_ns, record.labels["level"]) == expected, line


def test_a_number_past_a_double_in_a_field_not_read_is_no_parse_error() -> None:
    """The one line orjson refused and msgspec reads (json_fields.py): shipped with its fields."""
    labels = StreamLabels("bucket", {})
    maker = RecordMaker(TIMESTAMP_FIELDS, labels, Tally("gcs"))
    line = b'{"timestamp": 1772366432.5, "level": "error", "amount": 1e400}\n'
    record = maker.line_record(SHARED, labels.by_level("logs/"), line, 7, BASE_NS)
    assert record is not None and "parse_error" not in record.metadata
    assert (record.ts_ns, record.labels["level"]) == (1772366432_500_000_000, "error")


@pytest.mark.parametrize("line", INVALID)
def test_a_line_that_does_not_parse_carries_orjsons_error(line: bytes) -> None:
    labels, tally = StreamLabels("bucket", {}), Tally("gcs-unparsed")
    counted = {"source": "gcs-unparsed", "reason": "parse_error"}
    before = metrics.REGISTRY.get_sample_value("shipper_records_adjusted_total", counted) or 0.0
    maker = RecordMaker(TIMESTAMP_FIELDS, labels, tally)
    record = maker.line_record(SHARED, labels.by_level("logs/"), line, 7, BASE_NS)
    assert record is not None
    text = line.rstrip(b"\n").decode(errors="replace")
    with pytest.raises(orjson.JSONDecodeError) as raised:
        orjson.loads(text)
    assert record.metadata == {"object": "a.jsonl", "generation": "1", "line_no": "7",
                               "parse_error": str(raised.value)[:120]}
    assert record.line == text
    tally.flush()
    assert metrics.REGISTRY.get_sample_value("shipper_records_adjusted_total", counted) == before + 1
