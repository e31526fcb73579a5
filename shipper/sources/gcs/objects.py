"""Reading one object generation into batches of records, each with the cursor entry that covers
it: where to start (an append, a resume, or the start), gzip and format, then its lines or the
elements of its JSON document. Objects are read with ranged downloads of `read_chunk_bytes`
(memory does not grow with object size).

Unchanged objects (same generation and size, `done`) are not read at all (the source skips
them). The same generation with a larger size (appendable objects) resumes at `offset`. A new
generation ships from the start (Loki drops the unchanged lines because their timestamps are
deterministic), unless it is plain (not gzip), longer than `offset` and still has the same
`tail` bytes there and the same `head`: then it was an append (append.py) and only the new lines
ship."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from google.api_core import exceptions as gexc

from shipper.models import LogRecord
from shipper.sources.base import SourceError
from shipper.sources.gcs.append import HeadDigest, continues, moved
from shipper.sources.gcs.cursor import ObjectEntry
from shipper.sources.gcs.limits import GcsLimits
from shipper.sources.gcs.listing import ACCESS_ERRORS, ObjectInfo
from shipper.sources.gcs.reader import (
    CORRUPT_STREAM_ERRORS,
    GZIP_MAGIC,
    CappedReader,
    DocumentTooLarge,
    RangedReader,
    discard_rest_of_line,
    peek,
    skip,
)
from shipper.sources.gcs.records import RecordMaker, Tally, object_metadata
from shipper.sources.gcs.sniff import looks_binary, mode_of

log = logging.getLogger("shipper.sources.gcs")

# (blob, start, end, chunk bytes) -> the raw stream of [start, end) of that object generation
OpenRange = Callable[[Any, int, int, int], io.RawIOBase]
Read = Iterator[tuple[list[LogRecord], ObjectEntry]]


class ObjectReader:
    def __init__(
        self, client: Any, bucket: str, *, source_id: str, chunk_bytes: int, batch_records: int,
        limits: GcsLimits, maker: RecordMaker, tally: Tally, open_range: OpenRange = RangedReader,
    ) -> None:
        self._client, self._bucket, self._source_id = client, bucket, source_id
        self._chunk_bytes, self._batch_records, self._limits = chunk_bytes, batch_records, limits
        self._maker, self._tally, self._open_range = maker, tally, open_range

    def read(self, info: ObjectInfo, entry: ObjectEntry | None, base_ns: int) -> Read:
        """Batches of `info`'s unread records; `entry` is the object's cursor entry, None for an
        object never seen, and `base_ns` the timestamp base it gets then."""
        same = entry is not None and entry.describes(info)
        start = ObjectEntry(  # base_ns is kept across generations
            info.generation, info.size,
            base_ns=base_ns if entry is None or entry.base_ns is None else entry.base_ns,
            first_ns=entry.first_ns if entry is not None and same else None,
        )
        blob = self._client.bucket(self._bucket).blob(info.name, generation=info.generation)
        appending = False
        try:  # the append check downloads too: its errors are translated like the read's
            if entry is not None and not entry.gzip and (entry.mode or "lines") == "lines":
                if continues(blob, info, entry):
                    appending = True
                    start = replace(start, offset=entry.offset, line_no=entry.line_no, tail=entry.tail or "",
                                    head=entry.head or "")
            elif entry is not None and same:
                start = replace(start, offset=entry.offset, line_no=entry.line_no)  # re-stream and skip
            yield from self._read_stream(info, blob, start, appending)
        except (gexc.NotFound, gexc.PreconditionFailed):
            # rewritten or deleted while we read: the next pass sees the new generation
            self._tally.count("skipped", "object_changed")
            log.warning("gcs object changed while reading; retried next pass",
                        extra=self._event("gcs_object_changed", info))
        except ACCESS_ERRORS as exc:
            raise SourceError(f"cannot read gs://{self._bucket}/{info.name}: {exc}") from exc

    def _read_stream(self, info: ObjectInfo, blob: Any, start: ObjectEntry, appending: bool) -> Read:
        raw = self._open_range(blob, start.offset if appending else 0, info.size, self._chunk_bytes)
        try:
            yield from self._read_raw(info, raw, start, appending)
        finally:
            raw.close()  # stops reading ahead

    def _read_raw(self, info: ObjectInfo, raw: io.RawIOBase, start: ObjectEntry, appending: bool) -> Read:
        stored = io.BufferedReader(raw, buffer_size=1 << 16)
        # raw downloads always expose the stored bytes, so the magic bytes decide; Content-Encoding
        # or a .gz name on an object that is not gzip is only logged
        is_gzip = not appending and stored.peek(2)[:2] == GZIP_MAGIC
        if not appending and info.gzip_by_metadata and not is_gzip:
            log.info("gcs object named or marked gzip is not gzip; read as stored",
                     extra=self._event("gcs_not_gzip", info))
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=stored, mode="rb") if is_gzip else stored
        start = replace(start, gzip=is_gzip)
        try:
            if appending:
                mode = "lines"
            else:
                sniff_bytes = self._limits.binary_sniff_bytes
                sniff = peek(stream, sniff_bytes)
                if looks_binary(sniff):
                    self._tally.count("skipped", "binary_object")
                    log.warning("gcs object skipped: not UTF-8 text",
                                extra=self._event("gcs_binary_object", info))
                    yield [], replace(start, done=True, mode="binary")
                    return
                mode = mode_of(info.name, sniff, sniff_bytes=sniff_bytes)
            start = replace(start, mode=mode)
            if mode == "document":
                yield from self._read_document(info, stream, start)
            else:
                if start.offset and not appending:
                    skip(stream, start.offset)
                yield from self._read_lines(info, stream, start)
        except CORRUPT_STREAM_ERRORS as exc:  # corrupt gzip before the first line
            self._read_error(info, exc)
            yield [], replace(start, done=True, mode=start.mode or "lines")

    def _read_error(self, info: ObjectInfo, exc: BaseException) -> None:
        self._tally.count("skipped", "read_error")
        log.warning("gcs object unreadable after what was shipped (%s); not retried until it changes", exc,
                    extra=self._event("gcs_read_error", info))

    def _read_lines(self, info: ObjectInfo, stream: io.BufferedIOBase, start: ObjectEntry) -> Read:
        offset, line_no = start.offset, start.line_no
        # where a read may resume (append.moved): past the last whole line, and that line's bytes
        passed_offset, passed_line_no, before = offset, line_no, bytes.fromhex(start.tail or "")
        head = HeadDigest(start.head or "", reading_from_start=offset == 0)
        heading = head.wants_more()
        records: list[LogRecord] = []
        readline, make, batch_records = stream.readline, self._maker.line_record, self._batch_records
        span, max_line, low, high = self._limits.max_batch_span_ns, self._limits.max_line_read_bytes, 0, 0
        labels_for = self._maker.labels.by_level(info.prefix)
        shared, base_ns = object_metadata(info), int(start.base_ns or 0)
        while True:
            try:
                raw = readline(max_line)
            except CORRUPT_STREAM_ERRORS as exc:
                self._read_error(info, exc)  # ship what was read, then move past the object
                break
            size = len(raw)
            if not size:
                break
            offset += size
            line_no += 1
            if heading:
                heading = head.add(raw)
            record = make(shared, labels_for, raw, line_no, base_ns)
            if record is not None:
                ts = record.ts_ns
                if not records:
                    low = high = ts
                elif ts - low >= span or high - ts >= span:  # see GcsLimits.max_batch_span_ns
                    yield records, moved(start, passed_offset, passed_line_no, before, head)
                    records, low, high = [], ts, ts
                elif ts < low:
                    low = ts
                elif ts > high:
                    high = ts
            if raw[-1] == 10:  # ends with b"\n": a whole line
                passed_offset, passed_line_no, before = offset, line_no, raw
            elif size == max_line:  # cut at the line limit
                self._tally.count("adjusted", "truncated")
                try:
                    offset += discard_rest_of_line(stream, max_line)
                except CORRUPT_STREAM_ERRORS as exc:  # as above: this line too, then past the object
                    self._read_error(info, exc)
                    if record is not None:
                        records.append(record)
                    break
                passed_offset, passed_line_no, before = offset, line_no, b""
            if record is not None:
                records.append(record)
                if len(records) >= batch_records:
                    yield records, moved(start, passed_offset, passed_line_no, before, head)
                    records = []
        yield records, moved(start, passed_offset, passed_line_no, before, head, done=True)

    def _read_document(self, info: ObjectInfo, stream: io.BufferedIOBase, start: ObjectEntry) -> Read:
        """A single JSON document: an array gives one record per element, streamed; an object gives
        one record and is parsed whole, so one larger than the document limit is skipped."""
        import ijson  # only for JSON documents: a pass over JSON lines does not load it

        done_elements, span = start.offset, self._limits.max_batch_span_ns
        shared, base_ns = object_metadata(info), int(start.base_ns or 0)
        cap = self._limits.max_document_object_bytes
        element_no = low = high = 0
        records: list[LogRecord] = []
        if peek(stream, 64).lstrip()[:1] == b"{":
            if info.size > cap:
                self._document_too_large(info, cap, "")
                yield [], replace(start, done=True)
                return
            # the stored size bounds a plain object only: a gzip one is capped as it is inflated
            elements: Iterator[Any] = ijson.items(CappedReader(stream, cap), "", use_float=True)
        else:
            elements = ijson.items(stream, "item", use_float=True)
        try:
            for element in elements:
                element_no += 1
                if element_no <= done_elements:
                    continue
                record = self._maker.element_record(info, shared, element, element_no, base_ns)
                ts = record.ts_ns
                if records and (ts - low >= span or high - ts >= span):
                    yield records, replace(start, offset=element_no - 1, line_no=element_no - 1)
                    records = []
                low, high = (min(low, ts), max(high, ts)) if records else (ts, ts)
                records.append(record)
                if len(records) >= self._batch_records:
                    yield records, replace(start, offset=element_no, line_no=element_no)
                    records = []
        except CORRUPT_STREAM_ERRORS as exc:
            self._read_error(info, exc)
        except DocumentTooLarge:
            self._document_too_large(info, cap, " (inflated)")
        except ijson.JSONError as exc:
            self._tally.count("skipped", "parse_error")
            log.warning("gcs JSON document malformed after element %d (%s); rest skipped", element_no, exc,
                        extra=self._event("gcs_document_parse_error", info))
        final = max(element_no, done_elements)
        yield records, replace(start, offset=final, line_no=final, done=True)

    def _document_too_large(self, info: ObjectInfo, cap: int, inflated: str) -> None:
        self._tally.count("skipped", "document_too_large")
        log.warning("gcs JSON object document larger than %d bytes%s skipped", cap, inflated,
                    extra=self._event("gcs_document_too_large", info))

    def _event(self, event: str, info: ObjectInfo) -> dict[str, str]:
        return {"event": event, "source": self._source_id, "object": info.name}
