"""Push payloads for Loki's `POST /loki/api/v1/push`: protobuf + snappy (Loki's native format,
the default) or JSON (+ gzip).

push_pb2.py is generated from push.proto (a wire-compatible copy of Loki's pkg/push/push.proto):

    python -m shipper.sinks.loki.generate     # needs grpcio-tools; see generate.py

The hot path serializes with wire.py (same bytes, half the CPU); build_push_request() is the
push_pb2 reference it is tested against.

Records are turned into `Entry`s once (limits applied, labels rendered once per label set and
cached), grouped into streams by label set, and sorted by timestamp inside each stream.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, countOf
from typing import TYPE_CHECKING, Literal

import cramjam

from shipper.sinks.loki.wire import serialize_push_request

if TYPE_CHECKING:
    from shipper.sinks.loki import push_pb2

PushFormat = Literal["protobuf", "json"]
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"
JSON_CONTENT_TYPE = "application/json"
GZIP_LEVEL = 3  # about half the CPU of level 6 on log lines, bodies ~10% larger
_NS = 1_000_000_000


class StreamLabels:
    """One stream's label set as sent: rendered once, shared by all its entries. `moved` holds
    labels that did not fit (MAX_LABELS) and travel as structured metadata; `live`, for a late
    stream (late.py), the live stream it takes entries of."""

    __slots__ = ("label_string", "labels", "live", "moved")

    def __init__(self, labels: dict[str, str], moved: tuple[tuple[str, str], ...] = (),
                 live: StreamLabels | None = None) -> None:
        self.labels = labels
        self.label_string = render_labels(labels)
        self.moved = moved
        self.live = live


class Entry:
    """A record ready to send. `index` is its position in the push() input, `size` the bytes it
    counts for batching (line + structured metadata + framing), `line_bytes` its UTF-8 length."""

    __slots__ = ("index", "line", "line_bytes", "metadata", "size", "stream", "ts_ns")

    def __init__(
        self,
        index: int,
        stream: StreamLabels,
        ts_ns: int,
        line: str,
        metadata: Mapping[str, str],
        size: int,
        line_bytes: int,
    ) -> None:
        self.index = index
        self.stream = stream
        self.ts_ns = ts_ns
        self.line = line
        self.metadata = metadata
        self.size = size
        self.line_bytes = line_bytes


def render_labels(labels: Mapping[str, str]) -> str:
    """`{a="b", c="d"}` with names sorted, as Loki renders a stream; values quoted with escapes
    that are valid Go string-literal syntax (what Loki's label parser reads)."""
    return "{" + ", ".join(
        f"{name}={json.dumps(labels[name], ensure_ascii=False)}" for name in sorted(labels)
    ) + "}"


_stream_of = attrgetter("stream")


def one_stream(entries: Sequence[Entry]) -> StreamLabels | None:
    """The stream every entry has, if they share one (the usual push: one live stream a request),
    else None. Scanned in C, about a quarter of a Python loop's time."""
    if not entries:
        return None
    first = entries[0].stream
    return first if countOf(map(_stream_of, entries), first) == len(entries) else None


def group_streams(entries: Iterable[Entry], *, in_ts_order: bool = False) -> dict[StreamLabels, list[Entry]]:
    """Entries by stream, in timestamp order inside each stream (stable for equal timestamps).
    `in_ts_order` says the input is sorted by timestamp already, so the streams are too.

    Grouped by object (one per label set, shared by its entries), then by label string should two
    objects carry the same labels (made on each side of a cache's clearing): a request naming a
    stream twice is answered with the outcome of the last copy only (see late.py), so entries of
    the first that Loki refused would be lost unseen."""
    if in_ts_order and isinstance(entries, list) and (stream := one_stream(entries)) is not None:
        return {stream: list(entries)}
    streams: dict[StreamLabels, list[Entry]] = {}
    for entry in entries:
        bucket = streams.get(entry.stream)
        if bucket is None:
            streams[entry.stream] = [entry]
        else:
            bucket.append(entry)
    if len(streams) > 1 and len({stream.label_string for stream in streams}) < len(streams):
        streams, in_ts_order = _by_label_string(streams), False
    if not in_ts_order:
        for bucket in streams.values():
            bucket.sort(key=_ts_of)  # Timsort: linear when already in order
    return streams


def _by_label_string(streams: dict[StreamLabels, list[Entry]]) -> dict[StreamLabels, list[Entry]]:
    """Groups of objects with the same labels joined under the first of them (entries unsorted)."""
    first_of: dict[str, StreamLabels] = {}
    joined: dict[StreamLabels, list[Entry]] = {}
    for stream, bucket in streams.items():
        first = first_of.setdefault(stream.label_string, stream)
        joined.setdefault(first, []).extend(bucket)
    return joined


def _ts_of(entry: Entry) -> int:
    return entry.ts_ns


def encode_protobuf(streams: Mapping[StreamLabels, list[Entry]]) -> bytes:
    """Snappy (block format) compressed logproto.PushRequest, serialized by wire.py."""
    request = serialize_push_request((stream.label_string, entries) for stream, entries in streams.items())
    return bytes(cramjam.snappy.compress_raw(request))


def build_push_request(streams: Mapping[StreamLabels, list[Entry]]) -> push_pb2.PushRequest:
    """The same request built with the generated classes: the reference wire.py must match.
    (push_pb2 is imported here only: the shipper's start-up does not need it.)"""
    from shipper.sinks.loki import push_pb2

    request = push_pb2.PushRequest()
    for stream, entries in streams.items():
        add_entry = request.streams.add(labels=stream.label_string).entries.add
        for entry in entries:
            seconds, nanos = divmod(entry.ts_ns, _NS)
            add_entry(
                line=entry.line,
                timestamp={"seconds": seconds, "nanos": nanos},
                structuredMetadata=[{"name": name, "value": value} for name, value in entry.metadata.items()],
            )
    return request


def encode_json(streams: Mapping[StreamLabels, list[Entry]], *, gzip_level: int | None = GZIP_LEVEL) -> bytes:
    """Loki's JSON push body (`values: [[ "<ns>", line, {metadata}? ], ...]`), gzip-compressed
    unless gzip_level is None."""
    document = {
        "streams": [
            {
                "stream": stream.labels,
                "values": [
                    [str(entry.ts_ns), entry.line, dict(entry.metadata)] if entry.metadata
                    else [str(entry.ts_ns), entry.line]
                    for entry in entries
                ],
            }
            for stream, entries in streams.items()
        ]
    }
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return body if gzip_level is None else gzip.compress(body, compresslevel=gzip_level, mtime=0)


@dataclass(frozen=True, slots=True)
class Encoder:
    """Body + headers for one push format."""

    format: PushFormat
    gzip_level: int | None = GZIP_LEVEL

    @property
    def headers(self) -> dict[str, str]:
        if self.format == "protobuf":
            return {"Content-Type": PROTOBUF_CONTENT_TYPE}
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        if self.gzip_level is not None:
            headers["Content-Encoding"] = "gzip"
        return headers

    def encode(self, streams: Mapping[StreamLabels, list[Entry]]) -> bytes:
        if self.format == "protobuf":
            return encode_protobuf(streams)
        return encode_json(streams, gzip_level=self.gzip_level)
