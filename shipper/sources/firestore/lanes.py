"""Lanes (one per value type of the timestamp field), their positions in the cursor, and the
late-arrival window below a position (the package docstring says why and what it costs)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shipper.models import LogRecord
from shipper.records import EPOCH_UNITS, parse_timestamp_ns
from shipper.sources.firestore.values import decode_cursor_value, encode_cursor_value, ns_of

FIRESTORE_MIN_TIMESTAMP = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Lane:
    """One value type of the timestamp field, with the lower bound that selects exactly it."""

    name: str
    lower_bound: Any


LANES = (
    Lane("timestamp", FIRESTORE_MIN_TIMESTAMP),
    Lane("number", -math.inf),
    Lane("string", ""),
)
DIGEST_BYTES = 8
_NS = 1_000_000_000
# The string lane's layouts with a text bound: RFC 3339 (from its date to its seconds) and epoch digits
_ISO_SECOND = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ])\d{2}:\d{2}:\d{2}")
_EPOCH_TEXT = re.compile(r"(\d+)(?:\.\d+)?")
_EPOCH_WALL = datetime(1970, 1, 1)  # naive: a wall clock, in the text's own offset


@dataclass(slots=True)
class LanePosition:
    """Where a lane stands: the last (value, document id) read, and the digests of the documents
    it shipped with a time inside the late-arrival window ending at that value."""

    value: Any  # as Firestore returns it (a datetime in the timestamp lane)
    doc_id: str
    shipped: dict[str, int]  # digest_of(doc id) -> the time it was shipped with (ns)

    @classmethod
    def load(cls, lane: str, saved: Mapping[str, Any]) -> LanePosition:
        # a checkpoint from before the window has no "shipped": an empty set (see the docstring)
        return cls(decode_cursor_value(lane, saved["value"]), saved["doc_id"], dict(saved.get("shipped", {})))

    def dump(self) -> dict[str, Any]:
        saved: dict[str, Any] = {"value": encode_cursor_value(self.value), "doc_id": self.doc_id}
        if self.shipped:
            saved["shipped"] = dict(self.shipped)
        return saved


@dataclass(frozen=True, slots=True)
class LateWindow:
    """The lane values [lowest, position] of a late-arrival window; their times are >= since_ns."""

    lowest: Any
    since_ns: int


def late_window(lane: str, value: Any, seconds: int) -> LateWindow | None:
    """The window of `seconds` ending at the lane value `value`, expressed in the lane's own type;
    None when disabled, or when `value` is not a time (or, in the string lane, a text of a layout
    without a text bound)."""
    if seconds <= 0:
        return None
    if lane == "string" and isinstance(value, str):
        return _text_window(value, seconds)
    if lane == "timestamp" and isinstance(value, datetime):
        span = timedelta(seconds=seconds)
        lowest = value - span if value - FIRESTORE_MIN_TIMESTAMP > span else FIRESTORE_MIN_TIMESTAMP
        return LateWindow(lowest, ns_of(lowest))
    if lane == "number" and type(value) in (int, float) and parse_timestamp_ns(value) is not None:
        floor, per_second = next(unit for unit in EPOCH_UNITS if value >= unit[0])
        lowest = max(value - seconds * per_second, floor)  # never into another unit
        since_ns = parse_timestamp_ns(lowest)
        return LateWindow(lowest, since_ns) if since_ns is not None else None
    return None


def _text_window(text: str, seconds: int) -> LateWindow | None:
    """The string lane's window (see the module docstring): a bound in the text's own layout."""
    position_ns = parse_timestamp_ns(text)
    if position_ns is None:
        return None
    epoch = _EPOCH_TEXT.fullmatch(text)
    if epoch is not None:
        whole = epoch.group(1)
        window = late_window("number", int(whole), seconds)
        lowest = max(int(window.lowest), 10 ** (len(whole) - 1)) if window else None  # as many digits
        since_ns = parse_timestamp_ns(lowest)
        if lowest is None or since_ns is None or lowest > int(whole):  # "0", or leading zeros
            return None
        return LateWindow(str(lowest), since_ns)
    second = _ISO_SECOND.match(text)
    wall_ns = parse_timestamp_ns(second.group(0)) if second else None  # no offset: read as UTC
    if second is None or wall_ns is None:
        return None
    since_ns = (position_ns - seconds * _NS) // _NS * _NS
    offset_ns = wall_ns - position_ns // _NS * _NS
    try:
        lowest = _EPOCH_WALL + timedelta(microseconds=(since_ns + offset_ns) // 1000)
    except OverflowError:  # before year 1
        return None
    return LateWindow(lowest.isoformat(sep=second.group(1), timespec="seconds"), since_ns)



def digest_of(doc_id: str) -> str:
    return hashlib.blake2b(doc_id.encode(), digest_size=DIGEST_BYTES).hexdigest()


def lane_timestamp(value: Any) -> int | None:
    """A lane value's time (ns), None when it is no time."""
    if isinstance(value, datetime):
        return ns_of(value)
    return parse_timestamp_ns(value)


def advanced(
    lane: Lane, at: LanePosition | None, value: Any, doc_id: str, records: list[LogRecord], seconds: int
) -> LanePosition:
    """The lane moved to (value, doc_id) shipping `records`: remember them, forget the digests
    that fell out of the window of `seconds` now ending at `value`. A value with no window of its
    own (a text with no text bound, such as minute precision) forgets by its time; one that is no
    time at all forgets nothing, so that the next window still knows what was shipped."""
    if seconds <= 0:
        return LanePosition(value, doc_id, {})
    shipped = dict(at.shipped) if at is not None else {}
    shipped.update((digest_of(record.metadata["doc_id"]), record.ts_ns) for record in records)
    window = late_window(lane.name, value, seconds)
    moment_ns = lane_timestamp(value)
    if window is not None:
        since_ns = window.since_ns
    elif moment_ns is not None:
        since_ns = moment_ns - seconds * _NS
    else:
        return LanePosition(value, doc_id, shipped)
    return LanePosition(value, doc_id, {key: ts for key, ts in shipped.items() if ts >= since_ns})
