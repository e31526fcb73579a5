"""Building LogRecords from an object's lines and JSON elements: their timestamps, levels and
stream labels, and the counted adjustments and skips of the source.

Timestamps: a record's own field (settings' `timestamp_fields`) when it has one, else
`base_ns + line_no` (cursor.first_base_ns). The result is the same on every resend, so Loki
dedups a resend after a crash."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import MsgspecError
from orjson import loads as _loads  # 3-5x faster than json's per line; raises a ValueError subclass

from shipper import metrics
from shipper.models import LEVELS, LineMetadata, LogRecord, SharedMetadata
from shipper.records import (
    EXACT_LEVELS,
    level_from_fields,
    level_from_text,
    level_of,
    timestamp_from_fields,
    timestamp_from_text,
)
from shipper.sources.gcs.json_fields import UNSET, JsonFields
from shipper.sources.gcs.listing import ObjectInfo

_PARSE_ERROR_CHARS = 120


class Tally:
    """A source's counted adjustments and skips, flushed to the metrics once a batch is handed out."""

    def __init__(self, source_id: str) -> None:
        self._source_id = source_id
        self._counts: Counter[tuple[str, str]] = Counter()  # (counter name, reason) -> n

    def count(self, kind: str, reason: str) -> None:
        self._counts[(kind, reason)] += 1

    def flush(self) -> None:
        for (kind, reason), count in self._counts.items():
            counter = metrics.RECORDS_ADJUSTED if kind == "adjusted" else metrics.RECORDS_SKIPPED
            counter.labels(source=self._source_id, reason=reason).inc(count)
        self._counts.clear()


class StreamLabels:
    """Shared label dicts (few per source): the sink caches prepared label sets."""

    def __init__(self, bucket: str, extra: dict[str, str]) -> None:
        self._bucket = bucket
        self._extra = dict(extra)
        self._sets: dict[tuple[str, str], dict[str, str]] = {}

    def of(self, prefix: str, level: str) -> dict[str, str]:
        key = (prefix, level)
        labels = self._sets.get(key)
        if labels is None:
            name = prefix.strip("/")
            labels = {"source": "gcs", "service_name": name, "bucket": self._bucket,
                      "prefix": name, "level": level, **self._extra}
            self._sets[key] = labels
        return labels

    def by_level(self, prefix: str) -> dict[str, dict[str, str]]:
        """level_of() always answers one of LEVELS."""
        return {level: self.of(prefix, level) for level in LEVELS}


def object_metadata(info: ObjectInfo) -> SharedMetadata:
    """The structured metadata all records of this object generation share."""
    return SharedMetadata({"object": info.name, "generation": str(info.generation)})


class RecordMaker:
    def __init__(self, timestamp_fields: Sequence[str], labels: StreamLabels, tally: Tally) -> None:
        self._timestamp_fields = tuple(timestamp_fields)
        self._fields_of = JsonFields(self._timestamp_fields)
        self.labels = labels
        self._count = tally.count

    def line_record(
        self, shared: SharedMetadata, labels_for: dict[str, dict[str, str]], raw: bytes, line_no: int,
        base_ns: int,
    ) -> LogRecord | None:
        """The per-line hot path (see bench/shipper_throughput.py). A non-empty JSON object takes
        its timestamp and level from its fields; any other line (text, an array, `{}`, JSON that
        does not parse) gets the fallback timestamp and the level of its leading token."""
        stripped = raw.rstrip(b"\r\n")
        try:
            text = stripped.decode()
        except UnicodeDecodeError:
            text = stripped.decode(errors="replace")
            self._count("adjusted", "invalid_utf8")
        first = stripped[:1]
        if first == b"{" or first == b"[":
            opening = first
        elif not first or first.isspace():
            if not text.strip():
                self._count("skipped", "blank_line")
                return None
            opening = text.lstrip()[:1].encode()
        else:
            opening = b""
        metadata: Mapping[str, str] = LineMetadata(shared, str(line_no))
        if opening == b"{":
            fields_of = self._fields_of
            try:
                fields = fields_of.decode(text)
            except (MsgspecError, RecursionError):  # not JSON, or past msgspec's limits (nesting
                # deeper than about the interpreter's recursion limit, numbers past a double's)
                return self._parsed_record(text, metadata, labels_for, line_no, base_ns)
            # the common case of timestamp_from_fields and level_from_fields inlined: epoch
            # seconds in the first timestamp field, an exact level name in the first level field
            value = getattr(fields, fields_of.first_level)
            level = EXACT_LEVELS.get(value) if type(value) is str else None
            value = getattr(fields, fields_of.first_timestamp) if fields_of.first_timestamp else UNSET
            if level is None or not (type(value) is float and 0.0 <= value < 1e11):
                present = fields_of.as_dict(fields)
                return self._fields_record(present, text, metadata, labels_for, line_no, base_ns)
            whole = int(value)
            ts_ns = whole * 1_000_000_000 + round((value - whole) * 1e9)
            return LogRecord(ts_ns, text, labels_for[level], metadata)
        if opening == b"[":
            return self._parsed_record(text, metadata, labels_for, line_no, base_ns)
        return self._text_record(text, metadata, labels_for, line_no, base_ns)

    def _fields_record(
        self, fields: Mapping[str, Any], text: str, metadata: Mapping[str, str],
        labels_for: dict[str, dict[str, str]], line_no: int, base_ns: int,
    ) -> LogRecord:
        """The record of a JSON object with `fields`, through the shared helpers."""
        own_ns = timestamp_from_fields(fields, self._timestamp_fields)
        level = level_from_fields(fields) or level_from_text(text)
        ts_ns = base_ns + line_no if own_ns is None else own_ns
        return LogRecord(ts_ns, text, labels_for[level], metadata)

    def _parsed_record(
        self, text: str, metadata: Mapping[str, str], labels_for: dict[str, dict[str, str]], line_no: int,
        base_ns: int,
    ) -> LogRecord:
        """A line msgspec did not read as an object, read by orjson: an object past msgspec's
        limits takes its fields; an array or any other JSON is text; a line that is not JSON
        carries orjson's error (counted)."""
        try:
            fields = _loads(text)
        except ValueError as exc:
            metadata = {**metadata, "parse_error": str(exc)[:_PARSE_ERROR_CHARS]}
            self._count("adjusted", "parse_error")
        else:
            if fields and isinstance(fields, dict):
                return self._fields_record(fields, text, metadata, labels_for, line_no, base_ns)
        return self._text_record(text, metadata, labels_for, line_no, base_ns)

    @staticmethod
    def _text_record(
        text: str, metadata: Mapping[str, str], labels_for: dict[str, dict[str, str]], line_no: int,
        base_ns: int,
    ) -> LogRecord:
        own_ns = timestamp_from_text(text, base_ns)  # a text line's leading time is its entry time
        ts_ns = base_ns + line_no if own_ns is None else own_ns
        return LogRecord(ts_ns, text, labels_for[level_from_text(text)], metadata)

    def element_record(
        self, info: ObjectInfo, shared: SharedMetadata, element: Any, element_no: int, base_ns: int
    ) -> LogRecord:
        text = json.dumps(element, ensure_ascii=False, separators=(",", ":"))
        fields = element if isinstance(element, dict) else None
        ts_ns = timestamp_from_fields(fields, self._timestamp_fields) if fields else None
        return LogRecord(
            ts_ns if ts_ns is not None else base_ns + element_no,
            text,
            self.labels.of(info.prefix, level_of(fields, text)),
            LineMetadata(shared, str(element_no)),
        )
