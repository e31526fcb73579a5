"""Firestore source: each document of the configured collections becomes one JSON line.

Position: per collection, the documents are read in ascending order of a *timestamp field* and
then of the document id (`order_by(field).order_by(__name__)`), page by page (`page_size`) with
`start_after(last value, last id)`, so the first run streams a large collection and later runs
read only what sorts after the saved position.

Choices the Firestore query model forces on us (each one tested):

* The field is the one configured for the collection (`update_time` means the document's own
  update time), else the first of `timestamp`, `created_at` that some document has (decided
  once, when the collection first has documents, and kept in the cursor so the order never
  changes under a saved position). A collection
  with neither field is read in *update_time mode*: a streamed scan ordered by id that ships the
  documents whose `update_time` is newer than the previous complete scan (it reads the whole
  collection each run - Firestore cannot query by update_time - so prefer a field). Changing
  the configured field of a positioned collection is reported (`timestamp_field_changed`) and
  takes effect only once that collection's checkpoint entry is removed.
* Firestore orders mixed-type values by type first (null < bool < number < timestamp < string
  < ...) and a range filter only matches values of its own type. So each usable type -
  Firestore timestamps, numbers (epoch s/ms/us/ns) and strings (RFC 3339) - is its own *lane*
  with its own position: a new document whose field is a Timestamp is still found after the
  string lane has moved on. A lane value that does not parse as a time is skipped and counted
  (`shipper_records_skipped{reason="bad_timestamp"}`).
* Documents *missing* the field (or holding null, a bool, a map ...) are invisible to an
  ordered query. They cannot be shipped in field mode; instead, every run counts them with
  aggregation queries (all documents minus the lanes) and adds the growth since the previous
  run to `shipper_records_skipped{reason="no_timestamp_field"}`, with a warning that names the
  collection - never silently dropped. Configure the right field to ship them.
* Documents *updated* after being shipped are **not** re-shipped in field mode: the position
  follows the timestamp field, which records when the event happened, and a log entry is
  immutable (re-shipping would put a second, different line at the same timestamp in Loki).
  An update that moves the field past the saved position is read again, as a new entry. In
  update_time mode an update is by definition a new event and is shipped again.
* Late arrivals. The field is expected to grow with time ("now" at the writer), but a document
  can become visible after a pass has moved a lane past its value (a bot stamps `timestamp=now`
  and writes two seconds later). So each pass, before reading forward, a timestamp or number
  lane re-reads the documents whose field lies in the *late-arrival window*
  [saved position - `late_window_seconds`, saved position] (default 3600 s; 0 disables it) and
  ships those it has not shipped yet, with their own time from the field (so a resend after a
  crash is still dropped by Loki), counted as `shipper_records_adjusted{reason="late_arrival"}`
  and a `late_arrival` outcome. To know what it shipped, the lane's cursor keeps `shipped`:
  {8-byte blake2b hex digest of the document id: time shipped with, ns} for the documents
  shipped with a time inside the window ending at the lane's position; digests that fall out of
  the window as the position moves are dropped. The cursor is therefore bounded by the
  documents per window: one entry, about 40 bytes of JSON, per document of the window per lane
  (about 40 kB for 1,000), and every pass re-reads that many documents per lane (billed reads).
  The string lane sorts as text, not as time, so its window is a text bound: the position's
  moment minus the window, floored to the second and written in the position's own layout (its
  date-time separator and UTC offset, no fraction, no offset suffix; for epoch digits, as many
  digits). Every text of that layout whose moment lies in the window sorts at or after that
  bound - a longer text sorts after its own prefix, so fraction lengths do not matter - and the
  documents read between bound and position ship when their parsed time is inside the window and
  they were not shipped. A writer that mixes UTC offsets (or layouts) gets the window only for the
  texts of the position's offset, and as text order is not time order there, a document can
  come into a later window after its digest was forgotten: it is sent again, with the same
  timestamp and line, which Loki drops (and counted as late_arrival). A late document whose
  text does not parse is not seen. While the position is a text with no window (no time, or no
  text bound such as minute precision) there is no late read, and the digests are kept (by the
  position's time, or all of them when it is no time) for the next window.
  Limits: a document whose value is *more than* the window below the position when it becomes
  visible is still not found, nor counted - writers with skewed clocks should use a server
  timestamp (`SERVER_TIMESTAMP`); the window is read at the start of a pass, so a document that
  becomes visible during a pass that then moves the lane more than the window past it (a
  backlog) is not found either; a number lane is assumed to use one epoch unit
  (its window is computed in the unit of the saved position). The default hour is what Loki
  takes behind the newest entry of a stream (max_chunk_age / 2); a wider window needs Loki's
  max_chunk_age raised to match, or the oldest late documents are refused as too far behind
  (counted, and the pass is partial). A checkpoint written before
  the window existed, or a window made wider, has no digests for (part of) the window: the first
  pass after re-sends up to one window of documents - same timestamps and lines, which Loki
  drops - and counts them as late_arrival too.
* An empty or deleted collection (the same thing in Firestore) ships nothing and is reported as
  an `empty_collection` outcome; a permission or API error on one collection is a
  `collection_error:<reason>` outcome counted in `shipper_records_skipped` and the other
  collections still ship; its position is kept. Firestore being unreachable (unavailable,
  deadline exceeded) is a failed run: SourceError.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.api_core.exceptions import (
    DeadlineExceeded,
    GoogleAPICallError,
    RetryError,
    ServiceUnavailable,
)
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1._helpers import GeoPoint
from google.cloud.firestore_v1.document import DocumentReference
from proto.datetime_helpers import DatetimeWithNanoseconds as ProtoDatetimeWithNanoseconds

from shipper.config import FirestoreSourceConfig
from shipper.metrics import RECORDS_ADJUSTED, RECORDS_SKIPPED
from shipper.models import Batch, Cursor, LogRecord, Outcome
from shipper.records import EPOCH_UNITS, format_rfc3339_ns, level_of, parse_timestamp_ns
from shipper.sources.base import SourceError

if TYPE_CHECKING:
    from google.cloud.firestore import Client, DocumentSnapshot, Query

log = logging.getLogger(__name__)

DEFAULT_TIMESTAMP_CANDIDATES = ("timestamp", "created_at")
UPDATE_TIME_MODE = "__update_time__"
DOCUMENT_ID = "__name__"
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
        return LateWindow(lowest, _ns_of(lowest))
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


def _ns_of(moment: datetime) -> int:
    nanos = getattr(moment, "nanosecond", 0) or moment.microsecond * 1000
    return int(moment.replace(microsecond=0).timestamp()) * 1_000_000_000 + nanos


class FirestoreSource:
    def __init__(self, config: FirestoreSourceConfig, client: Client) -> None:
        self.id = config.id
        self.config = config
        self.client = client
        self.outcomes: list[Outcome] = []

    @classmethod
    def from_config(
        cls, config: FirestoreSourceConfig, client: Client | None = None
    ) -> FirestoreSource:
        if client is None:
            from google.cloud import firestore

            client = firestore.Client(project=config.project_id)
        return cls(config, client)

    # -- protocol ---------------------------------------------------------------------------

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        self.outcomes = []
        state: dict[str, Any] = json.loads(json.dumps((cursor or {}).get("collections", {})))
        for collection in self.config.collections:
            try:
                for records, position in self._pull_collection(collection, state.get(collection, {})):
                    state[collection] = position
                    yield Batch(records=records, cursor={"collections": json.loads(json.dumps(state))})
            except (ServiceUnavailable, DeadlineExceeded, RetryError) as exc:
                # Firestore itself is unreachable: a failed run, not a per-collection outcome
                raise SourceError(f"firestore unavailable while reading {collection}: {exc}") from exc
            except GoogleAPICallError as exc:
                reason = type(exc).__name__
                self._outcome(f"collection_error:{reason}", 1, f"{collection}: {exc.message}")
                RECORDS_SKIPPED.labels(source=self.id, reason=f"collection_error:{reason}").inc()
                log.warning("firestore %s: collection %s not read: %s", self.id, collection, exc)

    def check(self) -> str:
        parts = []
        for collection in self.config.collections:
            try:
                found = self.client.collection(collection).limit(1).get()
            except GoogleAPICallError as exc:
                parts.append(f"{collection}: error {type(exc).__name__}")
                continue
            parts.append(f"{collection}: {'has documents' if found else 'empty'}")
        found_text = ", ".join(parts)
        return f"firestore project {self.config.project_id}: {found_text}; {self.late_coverage()}"

    def late_coverage(self) -> str:
        """What the late-arrival window covers, for `shipper check`."""
        seconds = self.config.late_window_seconds
        if seconds <= 0:
            return ("late documents: window off (late_window_seconds=0): a document whose timestamp "
                    "is below what a pass already read is never shipped")
        return (f"late documents: a document stamped up to {_duration(seconds)} before the newest one "
                "already read is still shipped, once (remembered by digests for that long); an older "
                "late one is not found")

    # -- one collection -----------------------------------------------------------------------

    def _pull_collection(
        self, collection: str, position: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        field = position.get("field") or self._choose_field(collection)
        configured = self.config.timestamp_fields.get(collection)
        if position.get("field") and configured and _mode_of(configured) != field:
            self._outcome("timestamp_field_changed", 0, f"{collection}: kept {field!r}, not {configured!r}")
            log.warning(
                "firestore %s: %s is positioned by %r; the configured %r applies only after its"
                " checkpoint entry is removed (switching would re-ship the collection)",
                self.id, collection, field, configured,
            )
        if field is None:
            self._outcome("empty_collection", 0, collection)
            log.info("firestore %s: collection %s is empty or does not exist", self.id, collection)
            return
        position = {**position, "field": field}
        if field == UPDATE_TIME_MODE:
            yield from self._scan_by_update_time(collection, position)
            return
        shipped_any = False
        for lane in LANES:
            for records, moved in self._pull_lane(collection, field, lane, position):
                shipped_any = True
                position = moved
                yield records, position
        counted = self._count_missing_field(collection, field, position)
        if not shipped_any and counted.get("documents") == 0:
            self._outcome("empty_collection", 0, collection)
            log.info("firestore %s: collection %s is empty or does not exist", self.id, collection)
        if not shipped_any or counted != position:
            yield [], counted  # commit the chosen field and the missing-field count

    def _choose_field(self, collection: str) -> str | None:
        configured = self.config.timestamp_fields.get(collection)
        if configured:
            return _mode_of(configured)
        reference = self.client.collection(collection)
        for candidate in DEFAULT_TIMESTAMP_CANDIDATES:
            if reference.order_by(candidate).limit(1).get():
                return candidate
        if reference.limit(1).get():
            return UPDATE_TIME_MODE
        return None  # nothing to decide on yet: decide when documents exist

    def _lane_query(self, collection: str, field: str, lowest: Any) -> Query:
        """The documents whose field is >= lowest and of its type, in (field, id) order."""
        return (
            self.client.collection(collection)
            .where(filter=FieldFilter(field, ">=", lowest))
            .order_by(field)
            .order_by(DOCUMENT_ID)
        )

    def _pull_lane(
        self, collection: str, field: str, lane: Lane, position: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        saved = position.get("lanes", {}).get(lane.name)
        at = LanePosition.load(lane.name, saved) if saved is not None else None

        def moved(at: LanePosition) -> dict[str, Any]:
            return {**position, "lanes": {**position.get("lanes", {}), lane.name: at.dump()}}

        if at is not None:
            for late, with_late in self._pull_late(collection, field, lane, at):
                at = with_late
                yield late, moved(at)
        base = self._lane_query(collection, field, lane.lower_bound)
        while True:
            query = base if at is None else base.start_after([at.value, at.doc_id])
            snapshots = list(query.limit(self.config.page_size).stream())  # one page only
            if not snapshots:
                return
            records: list[LogRecord] = []
            for snapshot in snapshots:
                value = snapshot.get(field)
                ts_ns = self._lane_timestamp(value)
                if ts_ns is None:
                    RECORDS_SKIPPED.labels(source=self.id, reason="bad_timestamp").inc()
                    self._outcome("bad_timestamp", 1, f"{collection}/{snapshot.id}: {field}={value!r}")
                else:
                    records.append(self._record(collection, snapshot, ts_ns))
            last = snapshots[-1]
            at = self._advanced(lane, at, last.get(field), last.id, records)
            yield records, moved(at)
            if len(snapshots) < self.config.page_size:
                return

    def _advanced(
        self, lane: Lane, at: LanePosition | None, value: Any, doc_id: str, records: list[LogRecord]
    ) -> LanePosition:
        """The lane moved to (value, doc_id) shipping `records`: remember them, forget the digests
        that fell out of the window now ending at `value`. A value with no window of its own (a
        text with no text bound, such as minute precision) forgets by its time; one that is no
        time at all forgets nothing, so that the next window still knows what was shipped."""
        seconds = self.config.late_window_seconds
        if seconds <= 0:
            return LanePosition(value, doc_id, {})
        shipped = dict(at.shipped) if at is not None else {}
        shipped.update((digest_of(record.metadata["doc_id"]), record.ts_ns) for record in records)
        window = late_window(lane.name, value, seconds)
        moment_ns = self._lane_timestamp(value)
        if window is not None:
            since_ns = window.since_ns
        elif moment_ns is not None:
            since_ns = moment_ns - seconds * _NS
        else:
            return LanePosition(value, doc_id, shipped)
        return LanePosition(value, doc_id, {key: ts for key, ts in shipped.items() if ts >= since_ns})

    def _pull_late(
        self, collection: str, field: str, lane: Lane, at: LanePosition
    ) -> Iterator[tuple[list[LogRecord], LanePosition]]:
        """Ship the documents of the window below the lane's position that it has not shipped:
        written after the lane had passed their value. Each page's position holds their digests."""
        window = late_window(lane.name, at.value, self.config.late_window_seconds)
        if window is None:
            return
        base = self._lane_query(collection, field, window.lowest).end_at([at.value, at.doc_id])
        query = base
        while True:
            snapshots = list(query.limit(self.config.page_size).stream())
            late: list[LogRecord] = []
            for snapshot in snapshots:
                ts_ns = self._lane_timestamp(snapshot.get(field))
                # in the string lane, texts of other layouts or offsets can sort inside the bounds
                if ts_ns is None or ts_ns < window.since_ns:
                    continue
                if digest_of(snapshot.id) not in at.shipped:
                    late.append(self._record(collection, snapshot, ts_ns))
            if late:
                shipped = {**at.shipped, **{digest_of(r.metadata["doc_id"]): r.ts_ns for r in late}}
                at = LanePosition(at.value, at.doc_id, shipped)
                RECORDS_ADJUSTED.labels(source=self.id, reason="late_arrival").inc(len(late))
                ids = ", ".join(record.metadata["doc_id"] for record in late[:5])
                more = " ..." if len(late) > 5 else ""
                self._outcome("late_arrival", len(late), f"{collection} ({lane.name} lane): {ids}{more}")
                log.info(
                    "firestore %s: %d document(s) of %s written after the %s lane passed their %r",
                    self.id, len(late), collection, lane.name, field,
                )
                yield late, at
            if len(snapshots) < self.config.page_size:
                return
            query = base.start_after([snapshots[-1].get(field), snapshots[-1].id])

    @staticmethod
    def _lane_timestamp(value: Any) -> int | None:
        if isinstance(value, datetime):
            return _ns_of(value)
        return parse_timestamp_ns(value)

    def _count_missing_field(self, collection: str, field: str, position: dict[str, Any]) -> dict[str, Any]:
        reference = self.client.collection(collection)
        total = _count(reference)
        in_lanes = sum(_count(self._lane_query(collection, field, lane.lower_bound)) for lane in LANES)
        unusable = max(0, total - in_lanes)
        seen = int(position.get("no_field_seen", 0))
        if unusable > seen:
            RECORDS_SKIPPED.labels(source=self.id, reason="no_timestamp_field").inc(unusable - seen)
            self._outcome("no_timestamp_field", unusable - seen, f"{collection}: field {field!r}")
            log.warning(
                "firestore %s: %d document(s) of %s have no usable %r field and cannot be read in order;"
                " configure timestamp_fields for this collection",
                self.id, unusable - seen, collection, field,
            )
        return {**position, "no_field_seen": unusable, "documents": total}

    def _scan_by_update_time(
        self, collection: str, position: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        """Ship documents with since < update_time <= scan start, in id order, page by page; a
        scan interrupted by a crash resumes after its last id with the same bounds."""
        since = int(position.get("since_ns", 0))
        scan_start = position.get("scan_start_ns")
        after_id = position.get("after_id")
        base = self.client.collection(collection).order_by(DOCUMENT_ID)
        while True:
            query = base.start_after([after_id]) if after_id else base
            snapshots = list(query.limit(self.config.page_size).stream())
            if scan_start is None:
                # Firestore's clock, never ours: nothing read means the bound stays where it was
                scan_start = _ns_of(snapshots[0].read_time) if snapshots else since
            records = [
                self._record(collection, snapshot, _ns_of(snapshot.update_time))
                for snapshot in snapshots
                if since < _ns_of(snapshot.update_time) <= scan_start
            ]
            if len(snapshots) < self.config.page_size:
                yield records, {"field": UPDATE_TIME_MODE, "since_ns": scan_start}
                return
            after_id = snapshots[-1].id
            yield records, {"field": UPDATE_TIME_MODE, "since_ns": since,
                            "scan_start_ns": scan_start, "after_id": after_id}

    def _record(self, collection: str, snapshot: DocumentSnapshot[Any], ts_ns: int) -> LogRecord:
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
            metadata={"doc_id": snapshot.id, "update_time": format_rfc3339_ns(_ns_of(snapshot.update_time))},
        )

    def _outcome(self, reason: str, count: int, detail: str) -> None:
        self.outcomes.append(Outcome(source=self.id, reason=reason, count=count, detail=detail))


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _mode_of(configured_field: str) -> str:
    return UPDATE_TIME_MODE if configured_field == "update_time" else configured_field


def _count(query: Any) -> int:
    result = query.count().get()
    return int(result[0][0].value)
