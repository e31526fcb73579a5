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
* The field is assumed to grow with time (written as "now" by the writer): a document written
  later with a value *below* a lane's saved position is not found by that lane. Writers with
  skewed clocks should use a server timestamp (`SERVER_TIMESTAMP`).
* An empty or deleted collection (the same thing in Firestore) ships nothing and is reported as
  an `empty_collection` outcome; a permission or API error on one collection is a
  `collection_error:<reason>` outcome counted in `shipper_records_skipped` and the other
  collections still ship; its position is kept. Firestore being unreachable (unavailable,
  deadline exceeded) is a failed run: SourceError.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
from shipper.metrics import RECORDS_SKIPPED
from shipper.models import Batch, Cursor, LogRecord, Outcome
from shipper.records import format_rfc3339_ns, level_of, parse_timestamp_ns
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
        return f"firestore project {self.config.project_id}: " + ", ".join(parts)

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

    def _lane_query(self, collection: str, field: str, lane: Lane) -> Query:
        return (
            self.client.collection(collection)
            .where(filter=FieldFilter(field, ">=", lane.lower_bound))
            .order_by(field)
            .order_by(DOCUMENT_ID)
        )

    def _pull_lane(
        self, collection: str, field: str, lane: Lane, position: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        base = self._lane_query(collection, field, lane)
        saved = position.get("lanes", {}).get(lane.name)
        while True:
            query = base
            if saved is not None:
                query = query.start_after([decode_cursor_value(lane.name, saved["value"]), saved["doc_id"]])
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
            saved = {"value": encode_cursor_value(last.get(field)),
                     "doc_id": last.id}
            lanes = {**position.get("lanes", {}), lane.name: saved}
            position = {**position, "lanes": lanes}
            yield records, position
            if len(snapshots) < self.config.page_size:
                return

    @staticmethod
    def _lane_timestamp(value: Any) -> int | None:
        if isinstance(value, datetime):
            return _ns_of(value)
        return parse_timestamp_ns(value)

    def _count_missing_field(self, collection: str, field: str, position: dict[str, Any]) -> dict[str, Any]:
        reference = self.client.collection(collection)
        total = _count(reference)
        in_lanes = sum(_count(self._lane_query(collection, field, lane)) for lane in LANES)
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
                scan_start = _ns_of(snapshots[0].read_time) if snapshots else time.time_ns()
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

    def _record(self, collection: str, snapshot: DocumentSnapshot, ts_ns: int) -> LogRecord:
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


def _mode_of(configured_field: str) -> str:
    return UPDATE_TIME_MODE if configured_field == "update_time" else configured_field


def _count(query: Any) -> int:
    result = query.count().get()
    return int(result[0][0].value)
