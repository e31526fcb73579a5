"""GCS source: objects under `prefixes` of one bucket. New objects are read in the order of their
first record's timestamp (`first_ns`, from a ranged read of their first FIRST_RECORD_PEEK_BYTES,
inflated if gzip; the fallback timestamp for a line without one), objects seen before (appended,
rewritten, a read to resume) by their `updated` time: history enters each stream oldest first
whatever order it was uploaded in, so Loki's per-stream window ("entry too far behind") is met
as rarely as possible; the Loki sink gives what still would be refused a late stream.

Formats: JSON Lines (whatever the suffix: a `.json` object whose first line is a whole JSON
value followed by another line is JSON Lines), plain text, a single JSON document (`.json`, or,
without a telling suffix,
content that opens a JSON array - `[` and a first element that parses, so that log lines such as
"[2026-12-05 10:00:00] INFO ..." stay lines: an array gives one entry per element, streamed with
ijson; an object gives one entry and is
parsed whole, so one larger than MAX_DOCUMENT_OBJECT_BYTES is skipped and counted
`document_too_large`), each optionally gzip-compressed (detected by the magic bytes, which raw
downloads always expose; Content-Encoding: gzip and `.gz` objects are downloaded raw). Objects are
read with ranged downloads of `read_chunk_bytes` (memory does not grow with object size); a line
longer than MAX_LINE_READ_BYTES is cut there (counted `truncated`). Outcomes, all counted per
source: a line that looks like JSON but does not parse ships as raw text with `parse_error` in
structured metadata (shipper_records_adjusted{reason="parse_error"}); invalid UTF-8 in a line is
replaced (`invalid_utf8`); blank lines are skipped (`blank_line`); a binary object (NUL bytes or
mostly undecodable) is skipped (`binary_object`) and a corrupt gzip stops after what could be read
(`read_error`); both are marked done in the cursor so they are not retried until they change.

Cursor (`{"objects": {name: entry}}`), one entry per object seen, every entry replaced (never
mutated) when it moves:

    generation, size   the object version the entry describes (size in stored bytes)
    offset             bytes (decompressed for gzip) up to the end of the last shipped line that
                       ended with a newline (a last line without one is shipped but read again,
                       whole, if the object grows); for a single JSON document: the number of
                       elements shipped
    line_no            lines (or elements) shipped so far
    done               the object was read to its end
    gzip, mode         how it was read ("lines" or "document")
    base_ns            the fallback timestamp base (see below); kept across generations, and
                       committed (with offset 0) before any line of a new object is pushed
    tail               hex of the last bytes before `offset`, to recognise an append
    head               "length:digest" of the first bytes (up to 4 KiB), to recognise an append
    first_ns           the timestamp of the first record, peeked when the object was first seen

Unchanged objects (same generation and size, `done`) are not read again. The same generation with
a larger size (appendable objects) resumes at `offset`. A new generation ships from the start
(Loki drops the unchanged lines because their timestamps are deterministic), unless it is plain
(not gzip), longer than `offset` and still has the same `tail` bytes there and the same `head`:
then it was an append (a compose or a rewrite with more lines) and only the new lines ship. (The
tail alone is not enough: lines written from one template share their last bytes.) The cursor
keeps an entry for every object that still exists under the prefixes, complete or not, so it is
bounded by the number of objects; entries of deleted objects are dropped.

Timestamps: a record's own field (settings' `timestamp_fields`) when it has one, else
`base_ns + line_no`, where base_ns is the object's `updated` time the first time the object was
seen, plus microseconds derived from its name (objects written in the same millisecond). The
result is the same on every resend, so Loki dedups a resend after a crash.

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
  late stream (sinks/loki/client.py, `_not_held`), so history is not doubled; history Loki does
  not hold lands in `late_hour` streams;
- `--separate-stream` ships into streams with an extra `backfill="true"` label instead. The
  price: those entries are not deduplicated against live entries, so queries should select
  `backfill="true"` or exclude it.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import json
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ijson
import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from orjson import loads as _loads  # 3-5x faster than json's per line; raises a ValueError subclass

from shipper import metrics
from shipper.config import GcsSourceConfig
from shipper.models import LEVELS, MAX_UNCOMMITTED_SPAN_NS, Batch, Cursor, LogRecord
from shipper.records import (
    level_from_fields,
    level_from_text,
    level_of,
    timestamp_from_fields,
    timestamp_from_text,
)
from shipper.sources.base import SourceError

log = logging.getLogger(__name__)

DEFAULT_BATCH_RECORDS = 1000
MAX_LINE_READ_BYTES = 1 << 20  # a longer line is cut here (counted); Loki would refuse it anyway
MAX_DOCUMENT_OBJECT_BYTES = 16 << 20  # a single JSON *object* document is parsed whole; bounded
BINARY_SNIFF_BYTES = 8192
BINARY_INVALID_MIN = 8  # undecodable bytes tolerated in the sniffed start of a text object
TAIL_BYTES = 32
HEAD_BYTES = 4096
SKIP_CHUNK_BYTES = 1 << 20
FIRST_RECORD_PEEK_BYTES = 4096  # ranged read of a new object's start, for its first timestamp
# A batch's records span less than this (models.MAX_UNCOMMITTED_SPAN_NS says why).
MAX_BATCH_SPAN_NS = MAX_UNCOMMITTED_SPAN_NS
GZIP_MAGIC = b"\x1f\x8b"
DOCUMENT_SUFFIXES = (".json",)
LINE_SUFFIXES = (".jsonl", ".ndjson", ".log", ".txt")
_PARSE_ERROR_CHARS = 120
CHECK_LIST_LIMIT = 1000
_CORRUPT_STREAM_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
# API answers, credentials and network problems: the pass fails as a SourceError (nothing committed)
_ACCESS_ERRORS = (gexc.GoogleAPICallError, GoogleAuthError, requests.exceptions.RequestException)

# Blob classes whose download_as_bytes() takes single_shot_download (see _single_shot)
_SINGLE_SHOT_SUPPORT: dict[type, bool] = {}


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    name: str
    prefix: str
    generation: int
    size: int
    updated_ns: int
    content_encoding: str | None

    @property
    def gzip_by_metadata(self) -> bool:
        return (self.content_encoding or "").lower() == "gzip" or self.name.endswith(".gz")


class _RangedReader(io.RawIOBase):
    """Reads [start, end) of one object generation with ranged downloads of `chunk` bytes: the
    memory used is two chunks, whatever the object size. Works against GCS and the emulator (both
    honour Range); raw_download keeps gzip bytes as stored.

    While one chunk is being parsed the next one is already requested (one background thread,
    started only for objects longer than a chunk): the server's latency overlaps the parsing. A
    failed download raises where the chunk is consumed, as a direct download would."""

    def __init__(self, blob: Any, start: int, end: int, chunk: int) -> None:
        self._blob = blob
        self._pos = start
        self._end = end
        self._chunk = chunk
        self._buffer = b""
        self._buffer_pos = 0
        self._prefetcher: ThreadPoolExecutor | None = None
        self._next: Future[bytes] | None = None  # the chunk at self._pos, being downloaded
        self._options = _single_shot(blob)

    def readable(self) -> bool:
        return True

    def _download(self, start: int) -> bytes:
        last = min(start + self._chunk, self._end) - 1
        data: bytes = self._blob.download_as_bytes(
            start=start, end=last, raw_download=True, checksum=None, **self._options
        )
        return data

    def readinto(self, target: Any) -> int:
        if self._buffer_pos >= len(self._buffer):
            if self._pos >= self._end:
                return 0
            pending, self._next = self._next, None
            self._buffer = pending.result() if pending is not None else self._download(self._pos)
            self._buffer_pos = 0
            self._pos += len(self._buffer)
            if not self._buffer:
                self._end = self._pos  # object shorter than listed: stop here
                return 0
            if self._pos < self._end:
                if self._prefetcher is None:
                    self._prefetcher = ThreadPoolExecutor(1, thread_name_prefix="gcs-read-ahead")
                self._next = self._prefetcher.submit(self._download, self._pos)
        count = min(len(target), len(self._buffer) - self._buffer_pos)
        target[:count] = self._buffer[self._buffer_pos : self._buffer_pos + count]
        self._buffer_pos += count
        return count

    def close(self) -> None:
        """Waits for a download still in flight (its result or error is dropped), so that the
        client is never used by two threads once the reader is done."""
        if self._prefetcher is not None:
            if self._next is not None:
                self._next.cancel()
                self._next = None
            self._prefetcher.shutdown(wait=True)
            self._prefetcher = None
        super().close()


class _DocumentTooLarge(Exception):
    """A single JSON object document inflated past its cap."""


class _CappedReader:
    """A file-like read() over `stream` that raises _DocumentTooLarge past `limit` bytes."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._left + 1
        data = self._stream.read(min(size, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise _DocumentTooLarge
        return data


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
    ) -> None:
        """`known_base_ns`: object name -> base_ns another cursor gave it (the live cursor's, for
        a backfill). `borrow_base_ns`, set for a live pass, reads the backfill's at each pass."""
        self.id = config.id
        self.config = config
        self.client = client
        self.batch_records = batch_records
        self.since_ns = since_ns
        self.extra_labels = dict(extra_labels or {})
        self.known_base_ns = dict(known_base_ns or {})
        self.borrow_base_ns: Callable[[], dict[str, int]] | None = None
        # called with each object of a pass once it is read (or found unchanged): a progress bar
        self.on_object_done: Callable[[ObjectInfo], None] | None = None
        self._timestamp_fields = tuple(config.timestamp_fields)
        self._label_sets: dict[tuple[str, str], dict[str, str]] = {}
        self._counts: Counter[tuple[str, str]] = Counter()  # (counter name, reason) -> n

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
            known_base_ns=base_ns_of(live_cursor),
        )

    # -- protocol -----------------------------------------------------------------------------

    def check(self) -> str:
        """Lists each prefix (needs storage.objects.list only, as pull does)."""
        found: dict[str, int] = {}
        try:
            for prefix in self.config.prefixes:
                listing = self.client.list_blobs(
                    self.config.bucket, prefix=prefix, max_results=CHECK_LIST_LIMIT
                )
                found[prefix] = sum(1 for _ in listing)
        except _ACCESS_ERRORS as exc:
            raise SourceError(f"gcs bucket {self.config.bucket!r}: {exc}") from exc
        listed = ", ".join(
            f"{prefix}: {count}{'+' if count >= CHECK_LIST_LIMIT else ''}" for prefix, count in found.items()
        )
        return f"gcs bucket {self.config.bucket} readable; objects per prefix: {listed}"

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        previous: dict[str, dict[str, Any]] = dict((cursor or {}).get("objects", {}))
        objects = self._list_objects()
        state = {name: entry for name, entry in previous.items() if name in objects}
        dirty = len(state) != len(previous)  # state not yet handed out in a batch
        since = self.since_ns
        work = [info for info in objects.values() if since is None or info.updated_ns >= since]
        if self.borrow_base_ns is not None:  # a backfill may have shipped objects first seen here
            self.known_base_ns = self.borrow_base_ns()
        # A new object's base_ns is committed before any of its lines is pushed: were a push to
        # reach Loki and the pass fail before its checkpoint, the next pass would otherwise take
        # the base from a newer generation and send the same lines again at other timestamps.
        new = {info.name: self._first_entry(info, peek=True) for info in work if info.name not in state}
        work.sort(key=lambda info: (*_order(info, state.get(info.name) or new.get(info.name)), info.name))
        if new:
            state.update(new)
            yield Batch([], {"objects": dict(state)})
            dirty = False
        records: list[LogRecord] = []
        for info in work:
            entry = state.get(info.name)
            if _unchanged(entry, info):
                self._object_done(info)
                continue
            for new_records, new_entry in self._read_object(info, entry):
                if records and (len(records) + len(new_records) > self.batch_records
                                or _spans(records, *(record.ts_ns for record in new_records))):
                    yield Batch(records, {"objects": dict(state)})  # the state covering `records`
                    self._flush_counts()
                    records, dirty = [], False
                state[info.name] = new_entry
                records.extend(new_records)
                dirty = True
                if len(records) >= self.batch_records:
                    yield Batch(records, {"objects": dict(state)})
                    self._flush_counts()
                    records, dirty = [], False
            self._object_done(info)
        if records or dirty or cursor is None:
            yield Batch(records, {"objects": dict(state)})
        self._flush_counts()

    def pending_objects(self) -> list[ObjectInfo]:
        """The objects a pass would consider (updated since `since_ns` for a backfill): what a
        progress bar counts its total in."""
        since = self.since_ns
        return [info for info in self._list_objects().values() if since is None or info.updated_ns >= since]

    def _object_done(self, info: ObjectInfo) -> None:
        if self.on_object_done is not None:
            self.on_object_done(info)

    # -- listing ------------------------------------------------------------------------------

    def _list_objects(self) -> dict[str, ObjectInfo]:
        found: dict[str, ObjectInfo] = {}
        try:
            for prefix in self.config.prefixes:
                for blob in self.client.list_blobs(self.config.bucket, prefix=prefix):
                    if blob.name.endswith("/") or blob.name in found:
                        continue
                    stamp = blob.updated or blob.time_created
                    updated_ns = int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1_000
                    found[blob.name] = ObjectInfo(
                        blob.name, prefix, int(blob.generation), int(blob.size or 0), updated_ns,
                        blob.content_encoding,
                    )
        except _ACCESS_ERRORS as exc:
            raise SourceError(f"cannot list gcs bucket {self.config.bucket!r}: {exc}") from exc
        return found

    # -- reading one object -------------------------------------------------------------------

    def _first_entry(self, info: ObjectInfo, *, peek: bool = False) -> dict[str, Any]:
        """The entry of an object seen for the first time, before anything of it is read; with
        `peek`, also the timestamp of its first record (`first_ns`, see _peek_first_ns)."""
        base_ns = self.known_base_ns.get(info.name, first_base_ns(info.name, info.updated_ns))
        entry = {"generation": info.generation, "size": info.size, "offset": 0, "line_no": 0,
                 "done": False, "base_ns": base_ns}
        if peek:
            entry["first_ns"] = self._peek_first_ns(info, base_ns)
        return entry

    def _peek_first_ns(self, info: ObjectInfo, base_ns: int) -> int:
        """The timestamp of an object's first line, from a ranged read of its first
        FIRST_RECORD_PEEK_BYTES (inflated if gzip): new objects are read in the order of their
        first record, so history enters each stream oldest first whatever order it was uploaded
        in. A line without a timestamp of its own (or an unreadable start) gives its fallback
        timestamp. Only the order depends on it: a wrong guess costs late streams, never data."""
        fallback = base_ns + 1
        if info.size <= 0:
            return fallback
        blob = self.client.bucket(self.config.bucket).blob(info.name, generation=info.generation)
        try:
            head = blob.download_as_bytes(start=0, end=min(info.size, FIRST_RECORD_PEEK_BYTES) - 1,
                                          raw_download=True, checksum=None)
        except (gexc.NotFound, *_ACCESS_ERRORS):
            return fallback  # reading the object will tell
        if head[:2] == GZIP_MAGIC:
            try:
                head = zlib.decompressobj(wbits=31).decompress(head, FIRST_RECORD_PEEK_BYTES)
            except zlib.error:
                return fallback
        for line in head.split(b"\n"):
            if line.strip():
                try:
                    fields = _loads(line)
                except ValueError:
                    return fallback
                if not isinstance(fields, dict):
                    return fallback
                found = timestamp_from_fields(fields, self._timestamp_fields)
                return fallback if found is None else found
        return fallback

    def _read_object(
        self, info: ObjectInfo, entry: dict[str, Any] | None
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        start = self._first_entry(info)
        if entry and "base_ns" in entry:
            start["base_ns"] = int(entry["base_ns"])  # kept across generations
        if entry and "first_ns" in entry and int(entry["generation"]) == info.generation:
            start["first_ns"] = int(entry["first_ns"])
        blob = self.client.bucket(self.config.bucket).blob(info.name, generation=info.generation)
        try:  # the append check downloads too: its errors are translated like the read's
            if entry and not entry.get("gzip") and entry.get("mode", "lines") == "lines":
                if self._continues(blob, info, entry):
                    start.update(offset=entry["offset"], line_no=entry["line_no"], tail=entry.get("tail", ""),
                                 head=entry.get("head", ""))
            elif entry and int(entry["generation"]) == info.generation:
                start.update(offset=entry["offset"], line_no=entry["line_no"])  # re-stream and skip
            yield from self._read_stream(info, blob, start)
        except (gexc.NotFound, gexc.PreconditionFailed):
            # rewritten or deleted while we read: the next pass sees the new generation
            self._count("skipped", "object_changed")
            log.warning("gcs object changed while reading; retried next pass",
                        extra={"event": "gcs_object_changed", "source": self.id, "object": info.name})
        except _ACCESS_ERRORS as exc:
            raise SourceError(f"cannot read gs://{self.config.bucket}/{info.name}: {exc}") from exc

    def _continues(self, blob: Any, info: ObjectInfo, entry: dict[str, Any]) -> bool:
        """True when the new content continues where the cursor stopped (an append): the same
        bytes before the offset (`tail`) and at the start (`head`; lines written from one
        template share their ends, rarely their beginnings)."""
        offset = int(entry.get("offset", 0))
        if offset <= 0 or info.size < offset:
            return False
        if int(entry["generation"]) == info.generation:
            return True
        tail = bytes.fromhex(entry.get("tail", ""))
        if not tail:
            return False
        found = blob.download_as_bytes(
            start=offset - len(tail), end=offset - 1, raw_download=True, checksum=None
        )
        if found != tail:
            return False
        head_length, _, head_digest = str(entry.get("head", "")).partition(":")
        if not head_digest:  # a cursor written before the head was kept: the tail decides
            return True
        first = blob.download_as_bytes(start=0, end=int(head_length) - 1, raw_download=True, checksum=None)
        return _digest(first) == head_digest

    def _read_stream(
        self, info: ObjectInfo, blob: Any, start: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        offset = int(start["offset"])
        resume_plain = offset > 0 and "tail" in start
        raw = _RangedReader(blob, offset if resume_plain else 0, info.size, self.config.read_chunk_bytes)
        try:
            yield from self._read_raw(info, raw, start, offset, resume_plain)
        finally:
            raw.close()  # stops reading ahead

    def _read_raw(
        self, info: ObjectInfo, raw: _RangedReader, start: dict[str, Any], offset: int, resume_plain: bool
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        stored = io.BufferedReader(raw, buffer_size=1 << 16)
        # raw downloads always expose the stored bytes, so the magic bytes decide; Content-Encoding
        # or a .gz name on an object that is not gzip is only logged
        is_gzip = not resume_plain and stored.peek(2)[:2] == GZIP_MAGIC
        if not resume_plain and info.gzip_by_metadata and not is_gzip:
            log.info("gcs object named or marked gzip is not gzip; read as stored",
                     extra={"event": "gcs_not_gzip", "source": self.id, "object": info.name})
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=stored, mode="rb") if is_gzip else stored
        start["gzip"] = is_gzip
        try:
            if not resume_plain:
                sniff = _peek(stream, BINARY_SNIFF_BYTES)
                if _looks_binary(sniff):
                    self._count("skipped", "binary_object")
                    log.warning("gcs object skipped: not UTF-8 text",
                                extra={"event": "gcs_binary_object", "source": self.id, "object": info.name})
                    yield [], {**start, "done": True, "mode": "binary"}
                    return
                mode = _mode_of(info.name, sniff)
            else:
                mode = "lines"
            start["mode"] = mode
            if mode == "document":
                yield from self._read_document(info, stream, start)
            else:
                if offset and not resume_plain:
                    _skip(stream, offset)
                yield from self._read_lines(info, stream, start)
        except _CORRUPT_STREAM_ERRORS as exc:  # corrupt gzip before the first line
            self._read_error(info, exc)
            yield [], {**start, "done": True, "mode": start.get("mode", "lines")}

    def _read_error(self, info: ObjectInfo, exc: BaseException) -> None:
        self._count("skipped", "read_error")
        log.warning("gcs object unreadable after what was shipped (%s); not retried until it changes", exc,
                    extra={"event": "gcs_read_error", "source": self.id, "object": info.name})

    def _read_lines(
        self, info: ObjectInfo, stream: io.BufferedIOBase, start: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        offset, line_no = int(start["offset"]), int(start["line_no"])
        resume = _ResumePoint(offset, line_no, start.get("tail", ""))
        head = _HeadDigest(start.get("head", ""), reading_from_start=offset == 0)
        records: list[LogRecord] = []
        readline, make, batch_records = stream.readline, self._line_record, self.batch_records
        span, low, high = MAX_BATCH_SPAN_NS, 0, 0
        labels_for = self._labels_by_level(info.prefix)
        name, generation, base_ns = info.name, str(info.generation), int(start["base_ns"])
        while True:
            try:
                raw = readline(MAX_LINE_READ_BYTES)
            except _CORRUPT_STREAM_ERRORS as exc:
                self._read_error(info, exc)  # ship what was read, then move past the object
                break
            size = len(raw)
            if not size:
                break
            offset += size
            line_no += 1
            head.add(raw)
            record = make(name, generation, labels_for, raw, line_no, base_ns)
            if record is not None:
                ts = record.ts_ns
                if not records:
                    low = high = ts
                elif ts - low >= span or high - ts >= span:  # see MAX_BATCH_SPAN_NS
                    yield records, {**start, **resume.entry(), "head": head.text()}  # before this line
                    records, low, high = [], ts, ts
                elif ts < low:
                    low = ts
                elif ts > high:
                    high = ts
            if size == MAX_LINE_READ_BYTES and not raw.endswith(b"\n"):
                offset += _discard_rest_of_line(stream)
                self._count("adjusted", "truncated")
                resume.after_cut_line(offset, line_no)
            else:
                resume.after(raw, offset, line_no)
            if record is not None:
                records.append(record)
                if len(records) >= batch_records:
                    yield records, {**start, **resume.entry(), "head": head.text()}
                    records = []
        yield records, {**start, **resume.entry(), "head": head.text(), "done": True}

    def _line_record(
        self, name: str, generation: str, labels_for: dict[str, dict[str, str]], raw: bytes, line_no: int,
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
            looks_json = True
        elif not first or first.isspace():
            if not text.strip():
                self._count("skipped", "blank_line")
                return None
            looks_json = text.lstrip()[:1] in ("{", "[")
        else:
            looks_json = False
        metadata = {"object": name, "generation": generation, "line_no": str(line_no)}
        if looks_json:
            try:
                fields = _loads(text)
            except ValueError as exc:
                metadata["parse_error"] = str(exc)[:_PARSE_ERROR_CHARS]
                self._count("adjusted", "parse_error")
            else:
                if fields and isinstance(fields, dict):
                    ts_ns = timestamp_from_fields(fields, self._timestamp_fields)
                    level = level_from_fields(fields) or level_from_text(text)
                    return LogRecord(base_ns + line_no if ts_ns is None else ts_ns, text, labels_for[level],
                                     metadata)
        own_ns = timestamp_from_text(text, base_ns)  # a text line's leading time is its entry time
        ts_ns = base_ns + line_no if own_ns is None else own_ns
        return LogRecord(ts_ns, text, labels_for[level_from_text(text)], metadata)

    def _read_document(
        self, info: ObjectInfo, stream: io.BufferedIOBase, start: dict[str, Any]
    ) -> Iterator[tuple[list[LogRecord], dict[str, Any]]]:
        done_elements = int(start["offset"])
        element_no = low = high = 0
        records: list[LogRecord] = []
        first = _peek(stream, 64).lstrip()[:1]
        if first == b"{":
            if info.size > MAX_DOCUMENT_OBJECT_BYTES:
                self._count("skipped", "document_too_large")
                log.warning("gcs JSON object document larger than %d bytes skipped",
                            MAX_DOCUMENT_OBJECT_BYTES,
                            extra={"event": "gcs_document_too_large", "source": self.id, "object": info.name})
                yield [], {**start, "done": True}
                return
            # the stored size bounds a plain object only: a gzip one is capped as it is inflated
            capped = _CappedReader(stream, MAX_DOCUMENT_OBJECT_BYTES)
            elements: Iterator[Any] = ijson.items(capped, "", use_float=True)
        else:
            elements = ijson.items(stream, "item", use_float=True)
        try:
            for element in elements:
                element_no += 1
                if element_no <= done_elements:
                    continue
                record = self._element_record(info, element, element_no, start["base_ns"])
                ts = record.ts_ns
                if records and (ts - low >= MAX_BATCH_SPAN_NS or high - ts >= MAX_BATCH_SPAN_NS):
                    yield records, {**start, "offset": element_no - 1, "line_no": element_no - 1}
                    records = []
                low, high = (min(low, ts), max(high, ts)) if records else (ts, ts)
                records.append(record)
                if len(records) >= self.batch_records:
                    yield records, {**start, "offset": element_no, "line_no": element_no}
                    records = []
        except _CORRUPT_STREAM_ERRORS as exc:
            self._read_error(info, exc)
        except _DocumentTooLarge:
            self._count("skipped", "document_too_large")
            log.warning("gcs JSON object document larger than %d bytes (inflated) skipped",
                        MAX_DOCUMENT_OBJECT_BYTES,
                        extra={"event": "gcs_document_too_large", "source": self.id, "object": info.name})
        except ijson.JSONError as exc:
            self._count("skipped", "parse_error")
            log.warning("gcs JSON document malformed after element %d (%s); rest skipped", element_no, exc,
                        extra={"event": "gcs_document_parse_error", "source": self.id, "object": info.name})
        final = max(element_no, done_elements)
        yield records, {**start, "offset": final, "line_no": final, "done": True}

    def _element_record(self, info: ObjectInfo, element: Any, element_no: int, base_ns: int) -> LogRecord:
        text = json.dumps(element, ensure_ascii=False, separators=(",", ":"))
        fields = element if isinstance(element, dict) else None
        ts_ns = timestamp_from_fields(fields, self.config.timestamp_fields) if fields else None
        metadata = {"object": info.name, "generation": str(info.generation), "line_no": str(element_no)}
        return LogRecord(
            ts_ns if ts_ns is not None else base_ns + element_no,
            text,
            self._labels(info.prefix, level_of(fields, text)),
            metadata,
        )

    # -- helpers ------------------------------------------------------------------------------

    def _labels_by_level(self, prefix: str) -> dict[str, dict[str, str]]:
        """level_of() always answers one of LEVELS."""
        return {level: self._labels(prefix, level) for level in LEVELS}

    def _labels(self, prefix: str, level: str) -> dict[str, str]:
        """Shared label dicts (few per source): the sink caches prepared label sets."""
        key = (prefix, level)
        labels = self._label_sets.get(key)
        if labels is None:
            name = prefix.strip("/")
            labels = {"source": "gcs", "service_name": name, "bucket": self.config.bucket,
                      "prefix": name, "level": level, **self.extra_labels}
            self._label_sets[key] = labels
        return labels

    def _count(self, kind: str, reason: str) -> None:
        self._counts[(kind, reason)] += 1

    def _flush_counts(self) -> None:
        for (kind, reason), count in self._counts.items():
            counter = metrics.RECORDS_ADJUSTED if kind == "adjusted" else metrics.RECORDS_SKIPPED
            counter.labels(source=self.id, reason=reason).inc(count)
        self._counts.clear()


def build_storage_client() -> Any:
    """google-cloud-storage client: anonymous against STORAGE_EMULATOR_HOST, default creds else."""
    import os

    import google.cloud.storage as storage  # the package ships no type information

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "local-emulator")
        return storage.Client(project=project, credentials=AnonymousCredentials())
    return storage.Client()


def _single_shot(blob: Any) -> dict[str, bool]:
    """Read each ranged response with one read instead of the client library's 8 KiB loop (about
    1 ms of CPU saved per MiB); the range is one chunk, so memory is the same. Recent
    google-cloud-storage releases (3.17 here) have the option; without it the response is
    streamed as before."""
    kind = type(blob)
    supported = _SINGLE_SHOT_SUPPORT.get(kind)
    if supported is None:
        method = getattr(kind, "download_as_bytes", None)
        supported = method is not None and "single_shot_download" in inspect.signature(method).parameters
        _SINGLE_SHOT_SUPPORT[kind] = supported
    return {"single_shot_download": True} if supported else {}


class _ResumePoint:
    """Where a read of an object's lines may resume, and the bytes before it (the append check).
    A last line without its newline is shipped but not passed: the object may still be written
    (an appendable object, or a new generation that completes the line), and the completed line
    must be read whole, with the same line number."""

    def __init__(self, offset: int, line_no: int, tail: str) -> None:
        self.offset, self.line_no = offset, line_no
        self._before = bytes.fromhex(tail)  # the bytes before offset: a whole line, or its end

    def after(self, line: bytes, offset: int, line_no: int) -> None:
        if line.endswith(b"\n"):
            self.offset, self.line_no, self._before = offset, line_no, line

    def after_cut_line(self, offset: int, line_no: int) -> None:
        """Past a line cut at MAX_LINE_READ_BYTES: its bytes are not kept, so no append check."""
        self.offset, self.line_no, self._before = offset, line_no, b""

    def entry(self) -> dict[str, Any]:
        return {"offset": self.offset, "line_no": self.line_no, "tail": self._before[-TAIL_BYTES:].hex()}


class _HeadDigest:
    """A digest of an object's first HEAD_BYTES (or fewer) shipped bytes, as "length:digest"."""

    def __init__(self, saved: str, *, reading_from_start: bool) -> None:
        self._saved = saved
        self._bytes = bytearray() if reading_from_start else None

    def add(self, line: bytes) -> None:
        if self._bytes is not None and len(self._bytes) < HEAD_BYTES:
            self._bytes += line[: HEAD_BYTES - len(self._bytes)]

    def text(self) -> str:
        if self._bytes is None or not self._bytes:
            return self._saved
        return f"{len(self._bytes)}:{_digest(bytes(self._bytes))}"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def first_base_ns(name: str, updated_ns: int) -> int:
    """An object's timestamp base: its `updated` time (milliseconds in GCS) plus microseconds from
    its name. Two objects written in the same millisecond would otherwise give their identical
    lines without a timestamp (a templated "worker started") the same timestamps in one stream,
    and Loki would keep only one of them."""
    return updated_ns + zlib.crc32(name.encode()) % 1000 * 1000


def base_ns_of(cursor: Cursor | None) -> dict[str, int]:
    """Object name -> base_ns, from a GCS cursor."""
    objects = (cursor or {}).get("objects", {})
    return {name: int(entry["base_ns"]) for name, entry in objects.items() if "base_ns" in entry}


def _spans(records: list[LogRecord], *more: int) -> bool:
    """Whether `records` plus timestamps `more` span MAX_BATCH_SPAN_NS or more."""
    stamps = [record.ts_ns for record in records]
    stamps.extend(more)
    return max(stamps) - min(stamps) >= MAX_BATCH_SPAN_NS


def _order(info: ObjectInfo, entry: dict[str, Any] | None) -> tuple[int, int]:
    """Reading order. First an object whose read stopped midway (a crash, a failed push): the
    resend then follows what the stopped pass pushed, in the same order, so it takes the same
    Loki streams (models.MAX_UNCOMMITTED_SPAN_NS). Then by when the unread content begins: a new
    object's (or one not started) first record, else (an append, a new generation) the time it
    was last written."""
    if entry is None:
        return 1, info.updated_ns
    same = int(entry.get("generation", -1)) == info.generation
    if same and entry.get("offset") and not entry.get("done"):
        return 0, int(entry.get("first_ns", info.updated_ns))
    if "first_ns" in entry and not entry.get("offset"):
        return 1, int(entry["first_ns"])
    return 1, info.updated_ns


def _unchanged(entry: dict[str, Any] | None, info: ObjectInfo) -> bool:
    return (
        entry is not None
        and bool(entry.get("done"))
        and int(entry.get("generation", -1)) == info.generation
        and int(entry.get("size", -1)) == info.size
    )


def _peek(stream: io.BufferedIOBase, size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    data = peek(size) if peek is not None else b""
    return data[:size]


def _looks_binary(sample: bytes) -> bool:
    """NUL bytes, or more than a few undecodable bytes: a binary object, not text with a bad byte
    (which is shipped with the byte replaced)."""
    if b"\x00" in sample:
        return True
    invalid = sample.decode(errors="replace").count("\ufffd")
    return invalid > max(BINARY_INVALID_MIN, len(sample) // 20)


_JSON = json.JSONDecoder()
_UNDECIDED_TAIL_CHARS = 64  # a parse error this close to the end of the sniff may be truncation


def _mode_of(name: str, sniff: bytes) -> str:
    base = name.removesuffix(".gz").lower()
    if base.endswith(DOCUMENT_SUFFIXES):
        # JSON Lines is often stored as `.json`: read as one document, only its first line would
        # ship (the rest is "malformed") - content decides
        return "lines" if _starts_json_lines(sniff) else "document"
    if base.endswith(LINE_SUFFIXES):
        return "lines"
    return "document" if _starts_json_array(sniff, whole=len(sniff) < BINARY_SNIFF_BYTES) else "lines"


def _starts_json_lines(sniff: bytes) -> bool:
    """Content whose first non-blank line is a whole JSON object or array, followed by another
    line that opens one: JSON Lines. A pretty-printed document's first line (`{` or `[`) does not
    parse alone; a document on one line has no second line (and reads the same either way)."""
    lines = iter(sniff.split(b"\n"))
    for line in lines:
        if line.strip():
            break
    else:
        return False
    try:
        first = _loads(line)
    except ValueError:
        return False
    if not isinstance(first, dict | list):
        return False
    for following in lines:
        if following.strip():
            return following.lstrip()[:1] in (b"{", b"[")
    return False


def _starts_json_array(sniff: bytes, *, whole: bool) -> bool:
    """Content (no telling suffix) that opens a JSON array: `[`, then a first element that parses
    and is followed by `,` or `]`. Log lines such as "[2026-12-05 10:00:00] INFO ..." or
    "[INFO] ..." also start with `[` and must be read as lines. When the sniff is not the `whole`
    object, a first element that does not end within it cannot be judged: a JSON array is
    assumed, unless it fails early."""
    text = sniff.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text.startswith("["):
        return False
    start = len(text) - len(text[1:].lstrip())
    if start == len(text) or text[start] == "]":
        return True
    try:
        _, end = _JSON.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if whole:
            return False
        return exc.msg.startswith("Unterminated") or exc.pos >= len(text) - _UNDECIDED_TAIL_CHARS
    rest = text[end:].lstrip()
    return not rest or rest[0] in ",]"


def _skip(stream: io.BufferedIOBase, count: int) -> None:
    remaining = count
    while remaining > 0:
        chunk = stream.read(min(remaining, SKIP_CHUNK_BYTES))
        if not chunk:
            break
        remaining -= len(chunk)


def _discard_rest_of_line(stream: io.BufferedIOBase) -> int:
    discarded = 0
    while True:
        chunk = stream.readline(MAX_LINE_READ_BYTES)
        discarded += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return discarded

