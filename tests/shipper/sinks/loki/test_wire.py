"""wire.py must produce exactly what the generated push_pb2 classes serialize."""

from __future__ import annotations

import random
from collections.abc import Mapping

import cramjam
import pytest

from shipper.models import LineMetadata, SharedMetadata
from shipper.sinks.loki import push_pb2
from shipper.sinks.loki.encode import Entry, StreamLabels, build_push_request, encode_protobuf, group_streams
from shipper.sinks.loki.wire import serialize_push_request, varint

NS = 1_000_000_000


def _entry(index: int, stream: StreamLabels, ts_ns: int, line: str, metadata: Mapping[str, str]) -> Entry:
    return Entry(index, stream, ts_ns, line, metadata, len(line), len(line.encode()))


def _serialize(streams: dict[StreamLabels, list[Entry]]) -> bytes:
    return serialize_push_request((s.label_string, entries) for s, entries in streams.items())


@pytest.mark.parametrize(
    "value",
    [1, 127, 128, 300, 16383, 16384, 2**21, 2**28 - 1, 2**28, 999_999_999, 1_767_225_600, 2**35, 2**42 - 1,
     2**42, 2**62],
)
def test_varint_matches_protobuf(value: int) -> None:
    message = push_pb2.StreamAdapter(hash=value)
    assert message.SerializeToString() == b"\x18" + varint(value)  # hash: field 3, varint
    assert varint(0) == b"\x00"


def test_edge_cases_serialize_identically() -> None:
    a = StreamLabels({"service_name": "trades", "source": "gcs", "note": 'q"uo\\te ✓'})
    b = StreamLabels({"source": "pod"})
    entries = [
        _entry(0, a, 0, "", {}),  # epoch, empty line: proto3 omits both
        _entry(1, a, 5, "only nanos", {"": "empty name", "empty_value": ""}),
        _entry(2, a, 7 * NS, "only seconds", {"k": "v"}),
        _entry(3, b, -1, "before 1970", {}),  # negative seconds: 10-byte int64 varint
        _entry(4, b, 1_767_225_600 * NS + 999_999_999, "ünïcødé ✓ " * 50, {"object": "ö/1.jsonl", "n": "1"}),
        _entry(5, b, 1_767_225_600 * NS + 123_456, "x" * 20_000, {"big": "y" * 300}),
    ]
    streams = group_streams(entries)
    assert _serialize(streams) == build_push_request(streams).SerializeToString()


def test_random_requests_serialize_identically() -> None:
    rng = random.Random(1234)
    alphabet = "abcxyz _-\"\\\n\té✓"
    labels = [StreamLabels({"source": "gcs", "service_name": f"s{i}"}) for i in range(5)]
    for _ in range(30):
        entries = []
        for i in range(rng.randrange(1, 40)):
            line = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
            metadata = {f"k{j}": "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
                        for j in range(rng.randrange(0, 4))}
            ts = rng.randrange(0, 2**62) if rng.random() < 0.9 else rng.randrange(0, 10**6) * NS
            entries.append(_entry(i, rng.choice(labels), ts, line, metadata))
        streams = group_streams(entries)
        assert _serialize(streams) == build_push_request(streams).SerializeToString()


def test_metadata_pair_cache_paths_serialize_identically() -> None:
    """Repeated pairs (served from the per-request cache), more unique values than the cache holds,
    values of 128+ bytes, non-ASCII values and a name too long to cache."""
    stream = StreamLabels({"source": "gcs"})
    entries = []
    for i in range(700):
        metadata = {"object": "trades/ö.jsonl", "generation": "1767225600123456", "line_no": str(i)}
        if i % 50 == 0:
            metadata["long"] = "v" * (127 + i % 3) + "é"
        if i % 99 == 0:
            metadata["n" * 9000] = "x" if i % 2 else ""
        entries.append(_entry(i, stream, 1_767_225_600 * NS + i * 1_234_567, f"line {i}", metadata))
    streams = group_streams(entries)
    assert _serialize(streams) == build_push_request(streams).SerializeToString()


def test_line_metadata_serializes_as_the_dict_it_reads_as() -> None:
    """An object's shared pairs are encoded once per request and object: the bytes must be those
    of the same metadata as a dict, and push_pb2's, across objects, line numbers of any length
    (a non-ASCII or 128+ character one takes the general path) and an empty or non-ASCII value."""
    stream, other = StreamLabels({"source": "gcs"}), StreamLabels({"source": "gcs", "level": "error"})
    objects = [SharedMetadata({"object": "trades/ö.jsonl", "generation": "1767225600123456"}),
               SharedMetadata({"object": "trades/b.jsonl", "generation": ""}),
               SharedMetadata({})]
    as_lines, as_dicts = [], []
    for i in range(600):
        line_no = str(i) if i % 97 else ("٣" if i % 2 else "9" * 130)
        metadata = LineMetadata(objects[i % 3], line_no)
        ts = 1_767_225_600 * NS + i * 7_654_321
        as_lines.append(_entry(i, stream if i % 5 else other, ts, f"line {i}", metadata))
        as_dicts.append(_entry(i, stream if i % 5 else other, ts, f"line {i}", dict(metadata)))
    lines, dicts = group_streams(as_lines), group_streams(as_dicts)
    assert _serialize(lines) == _serialize(dicts) == build_push_request(dicts).SerializeToString()
    assert build_push_request(lines) == build_push_request(dicts)


def test_encode_protobuf_is_snappy_of_the_request() -> None:
    stream = StreamLabels({"source": "gcs"})
    streams = group_streams([_entry(0, stream, 10 * NS + 1, "line", {"a": "b"})])
    decoded = push_pb2.PushRequest.FromString(bytes(cramjam.snappy.decompress_raw(encode_protobuf(streams))))
    assert decoded == build_push_request(streams)
    [adapter] = decoded.streams
    assert adapter.labels == '{source="gcs"}'
    assert (adapter.entries[0].timestamp.seconds, adapter.entries[0].timestamp.nanos) == (10, 1)
