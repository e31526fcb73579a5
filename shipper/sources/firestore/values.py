"""Firestore values as JSON: documents become JSON lines (LogRecords), and lane positions
JSON-serialisable cursor values."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1._helpers import GeoPoint
from google.cloud.firestore_v1.document import DocumentReference
from proto.datetime_helpers import DatetimeWithNanoseconds as ProtoDatetimeWithNanoseconds

from shipper.models import LogRecord
from shipper.records import format_rfc3339_ns, level_of

if TYPE_CHECKING:
    from google.cloud.firestore import DocumentSnapshot


def to_json_value(value: Any) -> Any:
    """Firestore value -> JSON value: timestamps RFC 3339 (ns), references as paths, bytes as
    base64, GeoPoints as {latitude, longitude}, non-finite floats as strings."""
    if isinstance(value, DatetimeWithNanoseconds | ProtoDatetimeWithNanoseconds):
        return value.rfc3339()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, DocumentReference):
        return value.path
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, GeoPoint):
        return {"latitude": value.latitude, "longitude": value.longitude}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # e.g. Vector: keep something readable rather than fail the document


def encode_cursor_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_json_value(value)
    return value


def decode_cursor_value(lane: str, value: Any) -> Any:
    if lane == "timestamp":
        return DatetimeWithNanoseconds.from_rfc3339(value)
    return value


def ns_of(moment: datetime) -> int:
    nanos = getattr(moment, "nanosecond", 0) or moment.microsecond * 1000
    return int(moment.replace(microsecond=0).timestamp()) * 1_000_000_000 + nanos



def document_record(collection: str, snapshot: DocumentSnapshot[Any], ts_ns: int) -> LogRecord:
    """One document as one JSON line at `ts_ns`."""
    data = to_json_value(snapshot.to_dict() or {})
    line = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return LogRecord(
        ts_ns=ts_ns,
        line=line,
        labels={
            "source": "firestore",
            "service_name": collection,
            "collection": collection,
            "level": level_of(data, line),
        },
        metadata={"doc_id": snapshot.id, "update_time": format_rfc3339_ns(ns_of(snapshot.update_time))},
    )
