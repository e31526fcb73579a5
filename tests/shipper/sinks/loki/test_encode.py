"""What goes over the wire, decoded the way Loki decodes it (tests/loki_mock.py)."""

from __future__ import annotations

import pytest

from shipper.models import LineMetadata, LogRecord, SharedMetadata
from shipper.sinks.loki import prepare
from shipper.sinks.loki.encode import Entry, StreamLabels, group_streams, render_labels
from shipper.sinks.loki.prepare import Preparer
from tests.loki_mock import LokiMock, parse_label_string
from tests.shipper.sinks.loki.conftest import NOW_NS, SECOND, metric, record

GCS = {"source": "gcs", "service_name": "trades", "bucket": "b1", "prefix": "trades", "level": "info"}
POD = {"source": "pod", "service_name": "api", "namespace": "gpt", "pod": "api-1", "container": "api",
       "level": "error"}


def _records() -> list[LogRecord]:
    # deliberately out of order, two streams interleaved; GCS lines share their object's metadata
    gcs_object = SharedMetadata({"object": "t/1.jsonl"})
    return [
        LogRecord(NOW_NS - 5 * SECOND + 123, '{"msg":"b"}', dict(GCS), LineMetadata(gcs_object, "2")),
        LogRecord(NOW_NS - 9 * SECOND + 1, "pod crashed", dict(POD), {"node": "n1", "restart_count": "3"}),
        LogRecord(NOW_NS - 7 * SECOND, '{"msg":"a"}', dict(GCS), LineMetadata(gcs_object, "1")),
        LogRecord(NOW_NS - 1 * SECOND, "no metadata here", dict(GCS), {}),
    ]


@pytest.mark.parametrize("push_format", ["protobuf", "json"])
def test_streams_labels_timestamps_and_metadata_arrive_exactly(make_sink, push_format: str) -> None:
    mock = LokiMock()
    sink = make_sink(mock, push_format=push_format)

    result = sink.push(_records(), source="gcs")

    assert (result.accepted, result.rejected) == (4, [])
    assert result.accepted_bytes == sum(len(r.line) for r in _records())
    # one request per live stream: Loki 3.7 reports a refusal of only the last stream of a push
    assert [len(push.streams) for push in mock.requests] == [1, 1]
    for push in mock.requests:
        assert push.format == push_format
        if push_format == "protobuf":
            assert push.headers["content-type"] == "application/x-protobuf"
            assert "content-encoding" not in push.headers
        else:
            assert push.headers["content-type"] == "application/json"
            assert push.headers["content-encoding"] == "gzip"
    streams = {frozenset(s.labels.items()): s for push in mock.requests for s in push.streams}
    assert set(streams) == {frozenset(GCS.items()), frozenset(POD.items())}
    gcs = streams[frozenset(GCS.items())]
    assert [(e.ts_ns, e.line, e.metadata) for e in gcs.entries] == [
        (NOW_NS - 7 * SECOND, '{"msg":"a"}', {"object": "t/1.jsonl", "line_no": "1"}),
        (NOW_NS - 5 * SECOND + 123, '{"msg":"b"}', {"object": "t/1.jsonl", "line_no": "2"}),
        (NOW_NS - 1 * SECOND, "no metadata here", {}),
    ]
    pod = streams[frozenset(POD.items())]
    assert [(e.ts_ns, e.line, e.metadata) for e in pod.entries] == [
        (NOW_NS - 9 * SECOND + 1, "pod crashed", {"node": "n1", "restart_count": "3"})
    ]
    if push_format == "protobuf":  # the label string itself, as Loki renders streams
        assert gcs.label_string == (
            '{bucket="b1", level="info", prefix="trades", service_name="trades", source="gcs"}'
        )
    mock.assert_clean()


def test_line_metadata_is_prepared_as_the_dict_it_reads_as() -> None:
    """Sizes, metadata and adjustments of records whose metadata is an object's LineMetadata are
    those of the same records with dicts: the first of an object takes the checked path, the rest
    the shared sizes; a clamped timestamp adds its pair."""
    objects = [SharedMetadata({"object": "t/ö.jsonl", "generation": "17"}), SharedMetadata({"object": ""})]
    lines = [LogRecord(NOW_NS - SECOND + i if i != 3 else NOW_NS + 3600 * SECOND, f"line {i}", dict(GCS),
                       LineMetadata(objects[i % 2], str(i * 997))) for i in range(8)]
    dicts = [LogRecord(r.ts_ns, r.line, r.labels, dict(r.metadata)) for r in lines]
    prepared_lines, prepared_dicts = (Preparer().prepare(rs, now_ns=NOW_NS) for rs in (lines, dicts))
    assert prepared_lines.adjusted == prepared_dicts.adjusted == {"timestamp_clamped": 1}
    assert [(e.size, e.ts_ns, dict(e.metadata)) for e in prepared_lines.entries] == [
        (e.size, e.ts_ns, e.metadata) for e in prepared_dicts.entries
    ]
    assert isinstance(prepared_lines.entries[0].metadata, LineMetadata)  # passed through, not copied


def test_shipped_counters_count_acknowledged_lines_per_source(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock)
    lines_before = metric("shipper_lines_shipped_total", source="enc-src")
    bytes_before = metric("shipper_bytes_shipped_total", source="enc-src")

    sink.push(_records(), source="enc-src")

    assert metric("shipper_lines_shipped_total", source="enc-src") - lines_before == 4
    assert metric("shipper_bytes_shipped_total", source="enc-src") - bytes_before == sum(
        len(r.line.encode()) for r in _records()
    )


@pytest.mark.parametrize(
    "value", ['say "hi"', "back\\slash", "new\nline", "tab\there", "ünïcødé ✓", "{curly}, comma='x'"]
)
def test_label_values_that_need_quoting_round_trip_through_lokis_parser(make_sink, value: str) -> None:
    labels = {"source": "gcs", "service_name": value}
    assert parse_label_string(render_labels(labels)) == labels
    mock = LokiMock()
    make_sink(mock).push([record(1, "x", labels)], source="gcs")
    assert [entry[0] for entry in mock.entries()] == [labels]


def test_one_stream_object_per_label_set_even_with_different_key_order(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock)
    a = {"source": "gcs", "service_name": "trades"}
    b = {"service_name": "trades", "source": "gcs"}
    sink.push([record(3, "one", a), record(2, "two", b)], source="gcs")
    [push] = mock.requests
    assert len(push.streams) == 1
    assert [e.line for e in push.streams[0].entries] == ["one", "two"]


def test_batches_split_by_entries_and_bytes_in_time_order(make_sink) -> None:
    mock = LokiMock()
    sink = make_sink(mock, batch_max_entries=3)
    records = [record(10 - i, f"line {i}") for i in range(10)]
    assert sink.push(list(reversed(records)), source="gcs").accepted == 10
    assert [p.entry_count for p in mock.requests] == [3, 3, 3, 1]
    shipped = [e.line for p in mock.requests for s in p.streams for e in s.entries]
    assert shipped == [f"line {i}" for i in range(10)]  # oldest first across batches

    mock = LokiMock()
    sink = make_sink(mock, batch_max_bytes=4096)
    big = [record(100 - i, f"{i:04d}" + "y" * 1000) for i in range(10)]
    assert sink.push(big, source="gcs").accepted == 10
    counts = [p.entry_count for p in mock.requests]
    assert sum(counts) == 10 and max(counts) <= 4 and len(counts) >= 3


def test_empty_push_sends_nothing(make_sink) -> None:
    mock = LokiMock()
    result = make_sink(mock).push([], source="gcs")
    assert (result.accepted, result.rejected, mock.push_attempts) == (0, [], 0)


def test_stream_labels_render_sorted() -> None:
    assert StreamLabels({"b": "2", "a": "1"}).label_string == '{a="1", b="2"}'


@pytest.mark.parametrize("in_ts_order", [True, False])
def test_two_objects_with_the_same_labels_make_one_stream(in_ts_order: bool) -> None:
    """Two objects of one label set (made on each side of a cache's clearing) must not name the
    stream twice in a request: Loki answers for the last copy only."""
    first = StreamLabels({"source": "gcs", "level": "info"})
    again = StreamLabels({"level": "info", "source": "gcs"})
    other = StreamLabels({"source": "gcs", "level": "error"})
    entries = [Entry(index, stream, ts, f"line {index}", {}, 10, 6)
               for index, (stream, ts) in enumerate([(first, 1), (other, 2), (again, 3), (first, 4)])]
    grouped = group_streams(entries if in_ts_order else list(reversed(entries)), in_ts_order=in_ts_order)
    stamps = {stream.label_string: [entry.ts_ns for entry in bucket] for stream, bucket in grouped.items()}
    assert len(grouped) == 2 and stamps == {first.label_string: [1, 3, 4], other.label_string: [2]}


def test_a_label_cache_cleared_in_the_middle_of_a_push_names_each_stream_once(
    make_sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prepare, "_LABEL_CACHE_MAX", 2)
    mock = LokiMock()
    sink = make_sink(mock)
    sets = [{"source": "gcs", "service_name": name, "level": "info"} for name in ("x", "y", "z")]
    pushed = [record(10 - i, f"line {i}", sets[index]) for i, index in enumerate([0, 1, 2, 0, 1])]
    assert sink.push(pushed, source="gcs").accepted == 5
    for request in mock.requests:
        assert len({stream.label_string for stream in request.streams}) == len(request.streams)
    assert {labels["service_name"]: lines for labels, lines in
            ((dict(key), [line for _, line in values]) for key, values in mock.streams().items())} == {
        "x": ["line 0", "line 3"], "y": ["line 1", "line 4"], "z": ["line 2"]}
