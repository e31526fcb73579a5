"""GCS source: objects under `prefixes` of one bucket. New objects are read in the order of their
first record's timestamp (`first_ns`, from a ranged read of the object's first
`GcsLimits.first_record_peek_bytes`, inflated if gzip; the fallback timestamp for a line without
one), objects seen before (appended, rewritten, a read to resume) by their `updated` time: history
enters each stream oldest first whatever order it was uploaded in, so Loki's per-stream window
("entry too far behind") is met as rarely as possible; the Loki sink gives what still would be
refused a late stream.

Formats: JSON Lines (whatever the suffix: a `.json` object whose first line is a whole JSON
value followed by another line is JSON Lines), plain text, a single JSON document (`.json`, or,
without a telling suffix, content that opens a JSON array - `[` and a first element that parses,
so that log lines such as "[2026-12-05 10:00:00] INFO ..." stay lines: an array gives one entry
per element, streamed with ijson; an object gives one entry and is parsed whole, so one larger
than `GcsLimits.max_document_object_bytes` is skipped and counted `document_too_large`), each
optionally gzip-compressed (detected by the magic bytes, which raw downloads always expose;
Content-Encoding: gzip and `.gz` objects are downloaded raw). A line longer than
`GcsLimits.max_line_read_bytes` is cut there (counted `truncated`). Outcomes, all counted per
source: a line that looks like JSON but does not parse ships as raw text with `parse_error` in
structured metadata (shipper_records_adjusted{reason="parse_error"}); invalid UTF-8 in a line is
replaced (`invalid_utf8`); blank lines are skipped (`blank_line`); a binary object (NUL bytes or
mostly undecodable) is skipped (`binary_object`) and a corrupt gzip stops after what could be read
(`read_error`); both are marked done in the cursor so they are not retried until they change.

The cursor (cursor.py) keeps an entry for every object that still exists under the prefixes,
complete or not, so it is bounded by the number of objects; entries of deleted objects are
dropped. How an object is read again (unchanged, grown, appended, rewritten): objects.py.

Backfill (`shipper backfill --since T`) and Loki's "entry too far behind" (an entry more than ~1 h
older than the newest one already in its stream is refused):
- the live pass ships new objects in the order of their first record, so history enters each
  stream in time order; what is still behind goes to a `late_hour` stream (sinks/loki/late.py);
- a backfill reads objects updated at or after T with its own cursor namespace
  (`<source id>.backfill`), so it resumes after a crash and never moves the live cursor; it takes
  each object's base_ns from the live cursor where the live pass has one, so lines without a
  timestamp of their own get the same timestamps as when the live pass shipped them; the other
  way round, a live pass that first sees an object the backfill shipped takes the backfill's;
- by default it ships into the *same* streams as the live pass: entries the live pass already
  shipped are dropped by Loki as exact duplicates, or, when they are more than an hour behind the
  live stream's newest entry, found by the sink's question to Loki before they would go to a
  late stream (sinks/loki/held.py, `split_late`), so history is not doubled; history Loki does
  not hold lands in `late_hour` streams;
- `--separate-stream` ships into streams with an extra `backfill="true"` label instead. The
  price: those entries are not deduplicated against live entries, so queries should select
  `backfill="true"` or exclude it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from google.api_core import exceptions as gexc

from shipper.config import GcsSourceConfig
from shipper.models import Batch, Cursor, LogRecord
from shipper.sources.gcs.cursor import ObjectEntry, ObjectStates, base_ns_of, first_base_ns, reading_order
from shipper.sources.gcs.limits import DEFAULT_BATCH_RECORDS, DEFAULT_LIMITS, GcsLimits
from shipper.sources.gcs.listing import (
    ACCESS_ERRORS,
    ObjectInfo,
    build_storage_client,
    describe_prefixes,
    list_objects,
)
from shipper.sources.gcs.objects import ObjectReader, OpenRange
from shipper.sources.gcs.reader import RangedReader
from shipper.sources.gcs.records import RecordMaker, StreamLabels, Tally
from shipper.sources.gcs.sniff import first_record_ns


class GcsSource:
    def __init__(
        self,
        config: GcsSourceConfig,
        client: Any,
        *,
        batch_records: int = DEFAULT_BATCH_RECORDS,
        since_ns: int | None = None,
        extra_labels: dict[str, str] | None = None,
        known_base_ns: dict[str, int] | None = None,
        limits: GcsLimits = DEFAULT_LIMITS,
        open_range: OpenRange = RangedReader,
    ) -> None:
        """`known_base_ns`: object name -> base_ns another cursor gave it (the live cursor's, for
        a backfill). `borrow_base_ns`, set for a live pass, reads the backfill's at each pass.
        `open_range` opens the byte stream of part of an object (RangedReader)."""
        self.id = config.id
        self.config = config
        self.client = client
        self.batch_records = batch_records
        self.since_ns = since_ns
        self.extra_labels = dict(extra_labels or {})
        self.known_base_ns = dict(known_base_ns or {})
        self.limits = limits
        self.borrow_base_ns: Callable[[], dict[str, int]] | None = None
        # called with each object of a pass once it is read (or found unchanged): a progress bar
        self.on_object_done: Callable[[ObjectInfo], None] | None = None
        self._open_range = open_range
        self._tally = Tally(config.id)
        labels = StreamLabels(config.bucket, self.extra_labels)
        self._reader = ObjectReader(
            client, config.bucket, source_id=config.id, chunk_bytes=config.read_chunk_bytes,
            batch_records=batch_records, limits=limits, tally=self._tally, open_range=open_range,
            maker=RecordMaker(config.timestamp_fields, labels, self._tally),
        )

    @classmethod
    def from_config(
        cls, config: GcsSourceConfig, client: Any | None = None, *, batch_records: int = DEFAULT_BATCH_RECORDS
    ) -> GcsSource:
        client = client if client is not None else build_storage_client()
        return cls(config, client, batch_records=batch_records)

    def for_backfill(self, since_ns: int, *, separate_stream: bool, live_cursor: Cursor | None) -> GcsSource:
        """The backfill of this source; `live_cursor` (the live pass's checkpoint) lends it the
        base_ns of the objects the live pass has seen."""
        return GcsSource(
            self.config, self.client, batch_records=self.batch_records, since_ns=since_ns,
            extra_labels={"backfill": "true"} if separate_stream else None,
            known_base_ns=base_ns_of(live_cursor), limits=self.limits, open_range=self._open_range,
        )

    def borrow_from_backfill(self, load_backfill_cursor: Callable[[], Cursor | None]) -> None:
        """Each live pass takes the base_ns of the objects a backfill shipped before the live pass
        first saw them (else a line without its own timestamp would be stored twice)."""
        self.borrow_base_ns = lambda: base_ns_of(load_backfill_cursor())

    def follow(self, on_object_done: Callable[[ObjectInfo], None]) -> None:
        """A progress bar's hook: `on_object_done` gets each object of a pass once it is read (or
        found unchanged)."""
        self.on_object_done = on_object_done

    # -- protocol -----------------------------------------------------------------------------

    def check(self) -> str:
        """Lists each prefix (needs storage.objects.list only, as pull does)."""
        config = self.config
        return describe_prefixes(self.client, config.bucket, config.prefixes, self.limits.check_list_limit)

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        previous: dict[str, Any] = dict((cursor or {}).get("objects", {}))
        objects = self._list_objects()
        state = ObjectStates({name: entry for name, entry in previous.items() if name in objects})
        dirty = len(state) != len(previous)  # state not yet handed out in a batch
        work = self._pending(objects)
        if self.borrow_base_ns is not None:  # a backfill may have shipped objects first seen here
            self.known_base_ns = self.borrow_base_ns()
        # A new object's base_ns is committed before any of its lines is pushed: were a push to
        # reach Loki and the pass fail before its checkpoint, the next pass would otherwise take
        # the base from a newer generation and send the same lines again at other timestamps.
        new = {info.name: self._first_entry(info) for info in work if info.name not in state}
        work.sort(key=lambda info: (*reading_order(info, state.get(info.name) or new.get(info.name)),
                                    info.name))
        if new:
            for name, first in new.items():
                state.set(name, first)
            yield Batch([], state.cursor())
            dirty = False
        records: list[LogRecord] = []
        for info in work:
            entry = state.get(info.name)
            if entry is not None and entry.unchanged(info):
                self._object_done(info)
                continue
            for new_records, new_entry in self._reader.read(info, entry, self._base_ns(info)):
                if records and (len(records) + len(new_records) > self.batch_records
                                or self._spans(records, new_records)):
                    yield Batch(records, state.cursor())  # the state covering `records`
                    self._tally.flush()
                    records, dirty = [], False
                state.set(info.name, new_entry)
                records.extend(new_records)
                dirty = True
                if len(records) >= self.batch_records:
                    yield Batch(records, state.cursor())
                    self._tally.flush()
                    records, dirty = [], False
            self._object_done(info)
        if records or dirty or cursor is None:
            yield Batch(records, state.cursor())
        self._tally.flush()

    def pending_objects(self) -> list[ObjectInfo]:
        """The objects a pass would consider (updated since `since_ns` for a backfill): what a
        progress bar counts its total in."""
        return self._pending(self._list_objects())

    # -- helpers ------------------------------------------------------------------------------

    def _pending(self, objects: dict[str, ObjectInfo]) -> list[ObjectInfo]:
        since = self.since_ns
        return [info for info in objects.values() if since is None or info.updated_ns >= since]

    def _list_objects(self) -> dict[str, ObjectInfo]:
        return list_objects(self.client, self.config.bucket, self.config.prefixes)

    def _object_done(self, info: ObjectInfo) -> None:
        if self.on_object_done is not None:
            self.on_object_done(info)

    def _base_ns(self, info: ObjectInfo) -> int:
        return self.known_base_ns.get(info.name, first_base_ns(info.name, info.updated_ns))

    def _first_entry(self, info: ObjectInfo) -> ObjectEntry:
        """The entry of an object seen for the first time, before anything of it is read, with the
        timestamp of its first record (see _peek_first_ns)."""
        base_ns = self._base_ns(info)
        first_ns = self._peek_first_ns(info, base_ns)
        return ObjectEntry(info.generation, info.size, base_ns=base_ns, first_ns=first_ns)

    def _peek_first_ns(self, info: ObjectInfo, base_ns: int) -> int:
        """The timestamp of an object's first line, from a ranged read of its first bytes: new
        objects are read in the order of their first record, so history enters each stream oldest
        first whatever order it was uploaded in. A line without a timestamp of its own (or an
        unreadable start) gives its fallback timestamp. Only the order depends on it: a wrong
        guess costs late streams, never data."""
        fallback = base_ns + 1
        if info.size <= 0:
            return fallback
        limit = self.limits.first_record_peek_bytes
        blob = self.client.bucket(self.config.bucket).blob(info.name, generation=info.generation)
        try:
            head = blob.download_as_bytes(start=0, end=min(info.size, limit) - 1, raw_download=True,
                                          checksum=None)
        except (gexc.NotFound, *ACCESS_ERRORS):
            return fallback  # reading the object will tell
        return first_record_ns(head, self.config.timestamp_fields, fallback, limit)

    def _spans(self, records: list[LogRecord], more: list[LogRecord]) -> bool:
        """Whether `records` plus `more` span GcsLimits.max_batch_span_ns or more."""
        stamps = [record.ts_ns for record in records]
        stamps.extend(record.ts_ns for record in more)
        return max(stamps) - min(stamps) >= self.limits.max_batch_span_ns
