"""The Firestore source: each collection read by lanes in (timestamp field, id) order with its
late-arrival window, or by update_time scans (the package docstring says why)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from google.api_core.exceptions import (
    DeadlineExceeded,
    GoogleAPICallError,
    RetryError,
    ServiceUnavailable,
)
from google.cloud.firestore_v1 import FieldFilter

from shipper.config import FirestoreSourceConfig
from shipper.metrics import RECORDS_ADJUSTED, RECORDS_SKIPPED
from shipper.models import Batch, Cursor, LogRecord, Outcome
from shipper.sources.base import SourceError
from shipper.sources.firestore.lanes import (
    LANES,
    Lane,
    LanePosition,
    advanced,
    digest_of,
    lane_timestamp,
    late_window,
)
from shipper.sources.firestore.values import document_record, ns_of

if TYPE_CHECKING:
    from google.cloud.firestore import Client, Query

log = logging.getLogger("shipper.sources.firestore")

DEFAULT_TIMESTAMP_CANDIDATES = ("timestamp", "created_at")
UPDATE_TIME_MODE = "__update_time__"
DOCUMENT_ID = "__name__"
# the documents of a lane after its position whose value is no time, counted already
COUNTED_BAD = "counted_bad"
# a value up to this far ahead of the clock is a time (Loki's creation grace); beyond, the lane
# waits before it (_held_ahead)
FUTURE_GRACE_NS = 10 * 60 * 1_000_000_000


class FirestoreSource:
    def __init__(self, config: FirestoreSourceConfig, client: Client) -> None:
        self.id = config.id
        self.config = config
        self.client = client
        self.clock = time.time_ns  # what "ahead of the clock" means (_held_ahead)
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
        counted_before = set(position.get(COUNTED_BAD, {}).get(lane.name, ()))
        bad_after: list[str] = []  # digests of the documents after the lane's position that are no time

        def moved(at: LanePosition | None) -> dict[str, Any]:
            return _lane_moved(position, lane.name, at, bad_after)

        if at is not None:
            for late, with_late in self._pull_late(collection, field, lane, at):
                at = with_late
                yield late, moved(at)
        base = self._lane_query(collection, field, lane.lower_bound)
        after = None if at is None else [at.value, at.doc_id]  # pages go on past values that are no time
        horizon_ns = self.clock() + FUTURE_GRACE_NS
        while True:
            query = base if after is None else base.start_after(after)
            snapshots = list(query.limit(self.config.page_size).stream())  # one page only
            if not snapshots:
                return
            records: list[LogRecord] = []
            newest_time: Any = None
            ahead = None
            for snapshot in snapshots:
                value = snapshot.get(field)
                ts_ns = lane_timestamp(value)
                if ts_ns is None:
                    digest = digest_of(snapshot.id)
                    bad_after.append(digest)
                    if digest not in counted_before:
                        RECORDS_SKIPPED.labels(source=self.id, reason="bad_timestamp").inc()
                        self._outcome("bad_timestamp", 1, f"{collection}/{snapshot.id}: {field}={value!r}")
                elif ts_ns > horizon_ns:
                    ahead = snapshot
                    break
                else:
                    records.append(document_record(collection, snapshot, ts_ns))
                    newest_time, bad_after = snapshot, []
            if newest_time is not None:
                at = advanced(lane, at, newest_time.get(field), newest_time.id, records,
                              self.config.late_window_seconds)
            yield records, moved(at)
            if ahead is not None:
                self._held_ahead(collection, field, lane, ahead)
                return
            if len(snapshots) < self.config.page_size:
                return
            after = [snapshots[-1].get(field), snapshots[-1].id]

    def _held_ahead(self, collection: str, field: str, lane: Lane, snapshot: Any) -> None:
        """A document stamped later than now (a skewed clock, a wrong unit): the lane stops before
        it, so that it and what sorts after it ship once their time has come; were the lane to
        move onto it, every document written meanwhile would sort below the position, unread."""
        value = snapshot.get(field)
        self._outcome("future_timestamp", 1, f"{collection}/{snapshot.id}: {field}={value!r}")
        log.warning("firestore %s: %s/%s has %s=%r, ahead of the clock: the %s lane waits there until "
                    "that time has come", self.id, collection, snapshot.id, field, value, lane.name)

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
                ts_ns = lane_timestamp(snapshot.get(field))
                # in the string lane, texts of other layouts or offsets can sort inside the bounds
                if ts_ns is None or ts_ns < window.since_ns:
                    continue
                if digest_of(snapshot.id) not in at.shipped:
                    late.append(document_record(collection, snapshot, ts_ns))
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
                scan_start = ns_of(snapshots[0].read_time) if snapshots else since
            records = [
                document_record(collection, snapshot, ns_of(snapshot.update_time))
                for snapshot in snapshots
                if since < ns_of(snapshot.update_time) <= scan_start
            ]
            if len(snapshots) < self.config.page_size:
                yield records, {"field": UPDATE_TIME_MODE, "since_ns": scan_start}
                return
            after_id = snapshots[-1].id
            yield records, {"field": UPDATE_TIME_MODE, "since_ns": since,
                            "scan_start_ns": scan_start, "after_id": after_id}

    def _outcome(self, reason: str, count: int, detail: str) -> None:
        self.outcomes.append(Outcome(source=self.id, reason=reason, count=count, detail=detail))


def _lane_moved(
    position: dict[str, Any], lane: str, at: LanePosition | None, bad_after: list[str]
) -> dict[str, Any]:
    """The collection's position with the lane at `at`, and `bad_after` as its counted documents."""
    lanes = dict(position.get("lanes", {}))
    if at is not None:
        lanes[lane] = at.dump()
    counted = {name: ids for name, ids in position.get(COUNTED_BAD, {}).items() if name != lane}
    if bad_after:
        counted[lane] = list(bad_after)
    moved = {**position, "lanes": lanes, COUNTED_BAD: counted}
    if not counted:
        del moved[COUNTED_BAD]
    return moved


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
