"""GcsSource against a real gcp-storage-emulator on 127.0.0.1."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import zlib
from typing import Any

import pytest
import requests

from shipper import metrics
from shipper.config import GcsSourceConfig
from shipper.models import Cursor, LogRecord
from shipper.sources import gcs
from shipper.sources.base import SourceError
from shipper.sources.gcs import GcsLimits, GcsSource
from shipper.sources.gcs.limits import BINARY_SNIFF_BYTES, DEFAULT_LIMITS
from shipper.sources.gcs.objects import OpenRange
from shipper.sources.gcs.reader import RangedReader, single_shot
from shipper.sources.gcs.sniff import mode_of
from tests.shipper.gcs_emulator import GcsEmulator

pytestmark = pytest.mark.emulator


def make_source(emulator: GcsEmulator, bucket: Any, *, batch_records: int = 1000,
                prefixes: tuple[str, ...] = ("trades/",), limits: GcsLimits = DEFAULT_LIMITS,
                open_range: OpenRange = RangedReader) -> GcsSource:
    config = GcsSourceConfig(id=f"gcs-{bucket.name}", bucket=bucket.name, prefixes=list(prefixes),
                             read_chunk_bytes=4096)
    return GcsSource(config, emulator.client, batch_records=batch_records, limits=limits,
                     open_range=open_range)


def pull(source: GcsSource, cursor: Cursor | None = None) -> tuple[list[LogRecord], Cursor | None, int]:
    records: list[LogRecord] = []
    last: Cursor | None = cursor
    batches = 0
    for batch in source.pull(cursor):
        records.extend(batch.records)
        last = batch.cursor
        batches += 1
    return records, last, batches


def base_ns(bucket: Any, name: str) -> int:
    """The timestamp base the source gives `name` when it first sees it."""
    return gcs.first_base_ns(name, updated_ns(bucket, name))


def updated_ns(bucket: Any, name: str) -> int:
    blob = bucket.get_blob(name)
    return int(blob.updated.timestamp()) * 1_000_000_000 + blob.updated.microsecond * 1_000


def metric(name: str, source: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(name + "_total", {"source": source, "reason": reason}) or 0.0


def test_json_lines_labels_metadata_and_timestamps(emulator: GcsEmulator, bucket: Any) -> None:
    lines = [
        {"timestamp": "2026-11-22T10:00:00.123456789Z", "level": "ERROR", "msg": "order failed"},
        {"msg": "no time, no level"},
    ]
    bucket.blob("trades/2026-11-22.jsonl").upload_from_string(
        "".join(json.dumps(line) + "\n" for line in lines).encode()
    )
    records, cursor, _ = pull(make_source(emulator, bucket))
    base = base_ns(bucket, "trades/2026-11-22.jsonl")
    generation = str(bucket.get_blob("trades/2026-11-22.jsonl").generation)
    assert [r.line for r in records] == [json.dumps(line) for line in lines]
    assert records[0].ts_ns == 1795341600_123456789
    assert records[1].ts_ns == base + 2
    assert records[0].labels == {"source": "gcs", "service_name": "trades", "bucket": bucket.name,
                                 "prefix": "trades", "level": "error"}
    assert records[1].labels["level"] == "unknown"
    assert records[1].metadata == {"object": "trades/2026-11-22.jsonl", "generation": generation,
                                   "line_no": "2"}
    entry = cursor["objects"]["trades/2026-11-22.jsonl"]
    assert entry["done"] and entry["line_no"] == 2 and entry["offset"] == bucket.get_blob(
        "trades/2026-11-22.jsonl").size


def test_plain_text_and_oldest_object_first(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/b-older.log").upload_from_string(b"WARN disk almost full\nplain words\n")
    bucket.blob("trades/a-newer.txt").upload_from_string(b"[error] boom\n")
    records, _, _ = pull(make_source(emulator, bucket))
    assert [r.line for r in records] == ["WARN disk almost full", "plain words", "[error] boom"]
    assert [r.labels["level"] for r in records] == ["warn", "unknown", "error"]
    assert "parse_error" not in records[1].metadata


def test_single_json_documents_array_and_object(emulator: GcsEmulator, bucket: Any) -> None:
    array = [{"ts": 1795341600, "severity": "info", "n": 1}, {"n": 2.5}, "text element"]
    bucket.blob("trades/array.json").upload_from_string(json.dumps(array, indent=2).encode())
    bucket.blob("trades/one").upload_from_string(b'[{"only": true}]')
    bucket.blob("trades/object.json").upload_from_string(b'{\n "level": "warning",\n "x": [1, 2]\n}\n')
    records, cursor, _ = pull(make_source(emulator, bucket))
    by_object: dict[str, list[LogRecord]] = {}
    for record in records:
        by_object.setdefault(record.metadata["object"], []).append(record)
    assert [r.line for r in by_object["trades/array.json"]] == [
        '{"ts":1795341600,"severity":"info","n":1}', '{"n":2.5}', '"text element"']
    assert by_object["trades/array.json"][0].ts_ns == 1795341600 * 1_000_000_000
    assert by_object["trades/array.json"][0].labels["level"] == "info"
    assert [r.metadata["line_no"] for r in by_object["trades/array.json"]] == ["1", "2", "3"]
    assert [r.line for r in by_object["trades/one"]] == ['{"only":true}']
    assert [r.line for r in by_object["trades/object.json"]] == ['{"level":"warning","x":[1,2]}']
    assert by_object["trades/object.json"][0].labels["level"] == "warn"
    assert cursor["objects"]["trades/array.json"]["mode"] == "document"


@pytest.mark.parametrize(
    ("name", "content_encoding"),
    [("trades/by-encoding.jsonl", "gzip"), ("trades/by-name.jsonl.gz", None), ("trades/by-magic.log", None)],
)
def test_gzip_objects(emulator: GcsEmulator, bucket: Any, name: str, content_encoding: str | None) -> None:
    blob = bucket.blob(name)
    if content_encoding:
        blob.content_encoding = content_encoding
    text = "".join(f'{{"i": {i}, "level": "info"}}\n' for i in range(50))
    blob.upload_from_string(gzip.compress(text.encode()))
    source = make_source(emulator, bucket, batch_records=20)
    records, cursor, batches = pull(source)
    assert [r.line for r in records] == text.splitlines()
    assert batches == 1 + 3  # the new object's base_ns first, then 20 + 20 + 10 lines
    entry = cursor["objects"][name]
    assert entry["gzip"] is True and entry["offset"] == len(text.encode())


def test_gzip_json_document(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/doc.json.gz").upload_from_string(gzip.compress(b'[{"a": 1}, {"a": 2}]'))
    records, _, _ = pull(make_source(emulator, bucket))
    assert [r.line for r in records] == ['{"a":1}', '{"a":2}']


def test_append_ships_only_new_lines_with_stable_timestamps(emulator: GcsEmulator, bucket: Any) -> None:
    name = "trades/app.log"
    first = b"one\ntwo\n"
    bucket.blob(name).upload_from_string(first)
    source = make_source(emulator, bucket)
    records, cursor, _ = pull(source)
    base = base_ns(bucket, name)
    assert [(r.line, r.ts_ns) for r in records] == [("one", base + 1), ("two", base + 2)]
    bucket.blob(name).upload_from_string(first + b"three\nfour\n")  # new generation, same start
    reads: list[int] = []

    def spy(blob: Any, start: int, end: int, chunk: int) -> RangedReader:
        reads.append(start)
        return RangedReader(blob, start, end, chunk)

    records, cursor, _ = pull(make_source(emulator, bucket, open_range=spy), cursor)
    assert reads == [len(first)]  # a ranged read from the offset, not the whole object
    assert [(r.line, r.ts_ns, r.metadata["line_no"]) for r in records] == [
        ("three", base + 3, "3"), ("four", base + 4, "4")]
    assert cursor["objects"][name]["line_no"] == 4


def test_rewrite_ships_from_start_with_same_fallback_timestamps(emulator: GcsEmulator, bucket: Any) -> None:
    name = "trades/rewritten.log"
    bucket.blob(name).upload_from_string(b"alpha\nbeta\n")
    source = make_source(emulator, bucket)
    first, cursor, _ = pull(source)
    bucket.blob(name).upload_from_string(b"alpha\nBETA changed\ngamma\n")
    second, cursor, _ = pull(source, cursor)
    assert [r.line for r in second] == ["alpha", "BETA changed", "gamma"]
    assert second[0].ts_ns == first[0].ts_ns  # Loki drops the unchanged line as a duplicate
    assert second[0].metadata["generation"] != first[0].metadata["generation"]


def test_unchanged_objects_are_not_read_again(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/a.log").upload_from_string(b"a\n")
    bucket.blob("trades/b.json").upload_from_string(b"[1, 2]")
    source = make_source(emulator, bucket)
    _, cursor, _ = pull(source)

    def fail(*args: Any, **kwargs: Any) -> RangedReader:
        raise AssertionError("an unchanged object was read")

    records, again, batches = pull(make_source(emulator, bucket, open_range=fail), cursor)
    assert records == [] and batches == 0 and again == cursor


def test_malformed_lines_and_invalid_utf8_are_shipped_and_counted(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/mixed.jsonl").upload_from_string(
        b'{"ok": 1}\n{"broken": \n\n{"bad": "caf\xe9"}\n'
    )
    source = make_source(emulator, bucket)
    before = {reason: metric("shipper_records_adjusted", source.id, reason)
              for reason in ("parse_error", "invalid_utf8")}
    blank_before = metric("shipper_records_skipped", source.id, "blank_line")
    records, _, _ = pull(source)
    assert [r.line for r in records] == ['{"ok": 1}', '{"broken": ', '{"bad": "caf\ufffd"}']
    assert "parse_error" in records[1].metadata and records[1].labels["level"] == "unknown"
    assert "parse_error" not in records[2].metadata
    assert records[2].metadata["line_no"] == "4"
    assert metric("shipper_records_adjusted", source.id, "parse_error") == before["parse_error"] + 1
    assert metric("shipper_records_adjusted", source.id, "invalid_utf8") == before["invalid_utf8"] + 1
    assert metric("shipper_records_skipped", source.id, "blank_line") == blank_before + 1


def test_binary_object_is_skipped_counted_and_not_retried(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/a.log").upload_from_string(b"before\n")
    source = make_source(emulator, bucket)
    _, cursor, _ = pull(source)
    bucket.blob("trades/image.png").upload_from_string(bytes(range(256)) * 40)
    bucket.blob("trades/gzipped-binary.gz").upload_from_string(gzip.compress(bytes(range(256)) * 40))
    before = metric("shipper_records_skipped", source.id, "binary_object")
    records, cursor, batches = pull(source, cursor)
    assert records == [] and batches == 1 + 1  # the new objects' base_ns, then both marked done
    assert metric("shipper_records_skipped", source.id, "binary_object") == before + 2
    assert cursor["objects"]["trades/image.png"]["done"] is True
    records, _, batches = pull(source, cursor)
    assert records == [] and batches == 0
    assert metric("shipper_records_skipped", source.id, "binary_object") == before + 2


def test_corrupt_gzip_is_skipped_and_counted(emulator: GcsEmulator, bucket: Any) -> None:
    payload = "".join(f"line {i}\n" for i in range(5000)).encode()
    compressed = gzip.compress(payload)
    bucket.blob("trades/broken.log.gz").upload_from_string(compressed[: len(compressed) // 2])
    source = make_source(emulator, bucket)
    before = metric("shipper_records_skipped", source.id, "read_error")
    records, cursor, _ = pull(source)
    readable = zlib.decompressobj(wbits=31).decompress(compressed[: len(compressed) // 2])
    assert [r.line for r in records] == readable.decode().splitlines()[: readable.count(b"\n")]
    assert metric("shipper_records_skipped", source.id, "read_error") == before + 1
    assert cursor["objects"]["trades/broken.log.gz"]["done"] is True


def test_corrupt_gzip_inside_an_over_long_line_still_ships_what_was_read(
    emulator: GcsEmulator, bucket: Any
) -> None:
    """The stream breaks while the rest of a line cut at the limit is skipped: the lines read
    before it, and the cut line, still ship."""
    noise = random.Random(7).randbytes(400_000).hex().encode()  # compresses little: the cut falls inside it
    payload = b"".join(f"line {i}\n".encode() for i in range(3)) + noise
    compressed = gzip.compress(payload)
    bucket.blob("trades/long.log.gz").upload_from_string(compressed[: len(compressed) // 2])
    source = make_source(emulator, bucket, limits=GcsLimits(max_line_read_bytes=1000))
    before = metric("shipper_records_skipped", source.id, "read_error")
    records, cursor, _ = pull(source)
    assert [r.line for r in records[:3]] == ["line 0", "line 1", "line 2"] and len(records) == 4
    assert len(records[3].line) == 1000  # the cut line
    assert metric("shipper_records_skipped", source.id, "read_error") == before + 1
    assert cursor["objects"]["trades/long.log.gz"]["done"] is True


def test_object_larger_than_batch_resumes_from_every_intermediate_cursor(
    emulator: GcsEmulator, bucket: Any
) -> None:
    lines = [f"line {i} " + "x" * 150 for i in range(95)]
    payload = "".join(line + "\n" for line in lines).encode()
    bucket.blob("trades/big.log").upload_from_string(payload)
    bucket.blob("trades/big.log.gz").upload_from_string(gzip.compress(payload))
    source = make_source(emulator, bucket, batch_records=10)
    batches = list(source.pull(None))
    assert all(len(batch.records) <= 10 for batch in batches)
    shipped = [record.line for batch in batches for record in batch.records]
    assert shipped.count(lines[0]) == 2 and len(shipped) == 190
    for index in (0, 4, 9, 14):  # resume after a crash at any batch boundary
        rest, _, _ = pull(source, batches[index].cursor)
        already = [r.line for b in batches[: index + 1] for r in b.records]
        assert already + [r.line for r in rest] == shipped


def test_deleted_objects_leave_the_cursor(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/gone.log").upload_from_string(b"x\n")
    source = make_source(emulator, bucket)
    _, cursor, _ = pull(source)
    bucket.blob("trades/gone.log").delete()
    records, cursor, batches = pull(source, cursor)
    assert records == [] and batches == 1 and cursor == {"objects": {}}


def test_backfill_filters_by_updated_time_and_can_use_a_separate_stream(
    emulator: GcsEmulator, bucket: Any
) -> None:
    bucket.blob("trades/old.log").upload_from_string(b"old\n")
    since = updated_ns(bucket, "trades/old.log") + 1
    bucket.blob("trades/new.log").upload_from_string(b"new\n")
    source = make_source(emulator, bucket).for_backfill(since, separate_stream=True, live_cursor=None)
    records, _, _ = pull(source)
    assert [r.line for r in records] == ["new"]
    assert records[0].labels["backfill"] == "true"


def test_check_describes_the_bucket_and_fails_on_a_missing_one(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/a.log").upload_from_string(b"a\n")
    assert make_source(emulator, bucket).check() == (
        f"gcs bucket {bucket.name} readable; objects per prefix: trades/: 1")
    missing = GcsSource(GcsSourceConfig(bucket="no-such-bucket"), emulator.client)
    with pytest.raises(SourceError, match="no-such-bucket"):
        missing.check()


def _read_ahead_threads() -> list[Any]:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("gcs-read-ahead")]


def test_multi_chunk_object_is_read_ahead_and_every_line_ships_once(
    emulator: GcsEmulator, bucket: Any
) -> None:
    lines = [f"line {i:05d} " + "x" * (i % 300) for i in range(3000)]  # ~500 KB: many 4 KiB chunks
    bucket.blob("trades/big.log").upload_from_string("".join(line + "\n" for line in lines).encode())
    source = make_source(emulator, bucket, batch_records=250)
    records, cursor, _ = pull(source)
    assert [r.line for r in records] == lines
    assert [r.metadata["line_no"] for r in records] == [str(i) for i in range(1, 3001)]
    assert cursor is not None and cursor["objects"]["trades/big.log"]["done"]
    assert _read_ahead_threads() == []  # the reader's thread ends with the object


def test_abandoned_read_stops_reading_ahead(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/big.log").upload_from_string(b"".join(b"%06d\n" % i for i in range(20_000)))
    batches = make_source(emulator, bucket, batch_records=100).pull(None)
    assert next(batches).records == []  # the new object's base_ns, committed before its lines
    first = next(batches)
    assert [r.line for r in first.records][:2] == ["000000", "000001"]
    batches.close()  # the consumer gave up (e.g. the sink failed): no download left in flight
    assert _read_ahead_threads() == []


def test_failed_read_ahead_download_fails_the_pass(emulator: GcsEmulator, bucket: Any) -> None:
    bucket.blob("trades/big.log").upload_from_string(b"".join(b"%06d\n" % i for i in range(5000)))
    calls = itertools.count()

    class FlakyBlob:
        def __init__(self, blob: Any) -> None:
            self.blob = blob

        def download_as_bytes(self, **options: Any) -> bytes:
            if next(calls) == 3:  # a chunk fetched in the background
                raise requests.exceptions.ConnectionError("connection reset")
            data: bytes = self.blob.download_as_bytes(**options)
            return data

    def flaky(blob: Any, start: int, end: int, chunk: int) -> RangedReader:
        return RangedReader(FlakyBlob(blob), start, end, chunk)

    source = make_source(emulator, bucket, batch_records=100, open_range=flaky)
    shipped: list[LogRecord] = []
    with pytest.raises(SourceError, match="connection reset"):
        for batch in source.pull(None):
            shipped.extend(batch.records)
    assert [r.line for r in shipped] == [f"{i:06d}" for i in range(len(shipped))]  # a prefix, no gap
    assert len(shipped) < 5000
    assert _read_ahead_threads() == []


def test_ranged_reads_use_single_shot_downloads_only_where_the_client_has_them() -> None:
    from google.cloud import storage

    class OlderBlob:
        def download_as_bytes(self, start: int = 0, end: int | None = None, raw_download: bool = False,
                              checksum: str | None = None) -> bytes:
            return b"x\n"

    assert single_shot(storage.Blob("a", None)) == {"single_shot_download": True}
    assert single_shot(OlderBlob()) == {}
    reader = RangedReader(OlderBlob(), 0, 2, 1024)
    assert reader.read() == b"x\n"


@pytest.mark.parametrize("failure", ["network", "gone"])
def test_append_check_errors_are_a_source_error_or_a_counted_change(
    emulator: GcsEmulator, bucket: Any, monkeypatch: Any, failure: str
) -> None:
    """The tail download that recognises an append is translated like any other read: a network
    error fails the pass as a SourceError, a vanished generation is counted `object_changed`."""
    from google.api_core import exceptions as gexc
    from google.cloud import storage

    name = "trades/grown.log"
    bucket.blob(name).upload_from_string(b"one\ntwo\n")
    source = make_source(emulator, bucket)
    _, cursor, _ = pull(source)
    bucket.blob(name).upload_from_string(b"one\ntwo\nthree\n")  # new generation: the tail is checked

    def failing(self: Any, *args: Any, **kwargs: Any) -> bytes:
        if failure == "network":
            raise requests.exceptions.ConnectionError("connection reset during tail check")
        raise gexc.NotFound("generation gone")

    monkeypatch.setattr(storage.Blob, "download_as_bytes", failing)
    if failure == "network":
        with pytest.raises(SourceError, match="tail check"):
            pull(source, cursor)
    else:
        before = metric("shipper_records_skipped", source.id, "object_changed")
        records, after, _ = pull(source, cursor)
        assert records == []
        assert after == cursor  # the old entry stays: the next pass reads the new generation
        assert metric("shipper_records_skipped", source.id, "object_changed") - before == 1


def test_gzip_object_document_is_capped_by_its_inflated_size(emulator: GcsEmulator, bucket: Any) -> None:
    """A single JSON object is parsed whole: a small gzip that inflates past the cap is skipped and
    counted, not built in memory (the stored size says nothing about the inflated one)."""
    bucket.blob("trades/bomb.json.gz").upload_from_string(gzip.compress(b'{"k": "' + b"x" * 100_000 + b'"}'))
    bucket.blob("trades/small.json.gz").upload_from_string(gzip.compress(b'{"k": "' + b"y" * 3000 + b'"}'))
    source = make_source(emulator, bucket, limits=GcsLimits(max_document_object_bytes=4096))
    before = metric("shipper_records_skipped", source.id, "document_too_large")
    records, cursor, _ = pull(source)
    assert [r.metadata["object"] for r in records] == ["trades/small.json.gz"]
    assert cursor is not None and cursor["objects"]["trades/bomb.json.gz"]["done"]
    assert metric("shipper_records_skipped", source.id, "document_too_large") - before == 1


# --- found by fuzzing GcsSource + Pipeline + LokiSink against the emulator ----------------------


def test_an_overwrite_with_the_same_last_line_ending_is_not_taken_for_an_append(
    emulator: GcsEmulator, bucket: Any
) -> None:
    """Lines from one template share their last bytes: the append check also compares the start."""

    def order(n: int) -> str:  # the last 32 bytes of line 3 and of line 103 are the same
        ending = '", "account": "main", "level": "info"}\n'
        return f'{{"ts": "2026-12-05T07:00:{n % 60:02d}Z", "msg": "order {n:03d} filled{ending}'

    blob = bucket.blob("trades/latest.jsonl")
    blob.upload_from_string("".join(order(n) for n in (1, 2, 3)).encode())
    source = make_source(emulator, bucket)
    _, cursor, _ = pull(source)
    blob.upload_from_string("".join(order(n) for n in (101, 102, 103, 104)).encode())  # replaced
    records, cursor, _ = pull(source, cursor)
    assert [r.line for r in records] == [order(n).rstrip("\n") for n in (101, 102, 103, 104)]

    blob.upload_from_string("".join(order(n) for n in (101, 102, 103, 104, 105)).encode())  # appended
    records, _, _ = pull(source, cursor)
    assert [r.line for r in records] == [order(105).rstrip("\n")]


def test_a_last_line_without_its_newline_is_read_again_whole_once_completed(
    emulator: GcsEmulator, bucket: Any
) -> None:
    blob = bucket.blob("trades/app.log")
    blob.upload_from_string(b"INFO first line\nERROR second li")  # still being written
    source = make_source(emulator, bucket)
    first, cursor, _ = pull(source)
    assert [r.line for r in first] == ["INFO first line", "ERROR second li"]
    blob.upload_from_string(b"INFO first line\nERROR second line complete\nINFO third\n")
    again, cursor, _ = pull(source, cursor)
    # the completed line whole, with the number (so the timestamp) the fragment had
    assert [(r.line, r.ts_ns) for r in again] == [
        ("ERROR second line complete", first[1].ts_ns), ("INFO third", first[1].ts_ns + 1),
    ]
    assert cursor["objects"]["trades/app.log"]["line_no"] == 3


def test_lines_appended_after_a_last_line_without_newline_keep_their_numbers(
    emulator: GcsEmulator, bucket: Any
) -> None:
    blob = bucket.blob("trades/app.log")
    blob.upload_from_string(b"INFO a\nINFO b")
    source = make_source(emulator, bucket)
    first, cursor, _ = pull(source)
    blob.upload_from_string(b"INFO a\nINFO b\nINFO c\n")
    appended, cursor, _ = pull(source, cursor)
    stamps = {r.line: r.ts_ns for r in [*first, *appended]}
    base_ns = cursor["objects"]["trades/app.log"]["base_ns"]
    assert stamps == {"INFO a": base_ns + 1, "INFO b": base_ns + 2, "INFO c": base_ns + 3}


def test_a_new_objects_base_is_committed_before_any_of_its_lines(emulator: GcsEmulator, bucket: Any) -> None:
    """A pass whose push reached Loki but failed before its checkpoint must not leave the next
    pass to take the base from a newer generation (the same lines at other timestamps)."""
    blob = bucket.blob("trades/app.log")
    blob.upload_from_string(b"INFO alpha\n")
    source = make_source(emulator, bucket)
    batches = source.pull(None)
    registered = next(batches)  # committed; then the lines are pushed and the pass fails
    assert registered.records == []
    first_lines = next(batches).records
    batches.close()
    blob.upload_from_string(b"INFO alpha\nINFO beta\n")  # a new generation, updated later
    again, _, _ = pull(source, registered.cursor)
    assert (again[0].line, again[0].ts_ns) == (first_lines[0].line, first_lines[0].ts_ns)


def test_objects_written_in_the_same_millisecond_get_different_timestamp_bases() -> None:
    """Identical untimed lines of two objects updated in the same millisecond must not share
    timestamps in one stream (Loki would keep one). The base stays inside that millisecond."""
    updated = 1_796_454_043_123_000_000
    names = [f"trades/worker-{i}.log" for i in range(50)]
    bases = [gcs.first_base_ns(name, updated) for name in names]
    assert len(set(bases)) > 45  # a thousand slots: a rare pair may share one
    assert all(updated <= base < updated + 1_000_000 for base in bases)
    assert bases == [gcs.first_base_ns(name, updated) for name in names]  # the same on every pass


def test_log_lines_that_start_with_a_bracket_are_lines_not_a_json_document(
    emulator: GcsEmulator, bucket: Any
) -> None:
    """No telling suffix (a rotated app.log.1) and a first `[`: only real JSON makes a document."""
    text = "".join(f"[2026-12-05 10:00:{i:02d}] INFO step {i}\n" for i in range(50))
    bucket.blob("trades/app.log.1").upload_from_string(text.encode())
    bucket.blob("trades/export").upload_from_string(b'[{"i": 1}, {"i": 2}]')
    records, cursor, _ = pull(make_source(emulator, bucket))
    by_object: dict[str, list[str]] = {}
    for record in records:
        by_object.setdefault(record.metadata["object"], []).append(record.line)
    assert by_object["trades/app.log.1"] == text.splitlines()
    assert by_object["trades/export"] == ['{"i":1}', '{"i":2}']
    assert cursor["objects"]["trades/export"]["mode"] == "document"


@pytest.mark.parametrize(
    ("sniff", "mode"),
    [
        (b"[2026-12-05 10:00:00] INFO start\n", "lines"),
        (b"[INFO] hello\n", "lines"),
        (b"[1 2]", "lines"),
        (b'[\n  {"a": 1},\n  {"a": 2}\n]\n', "document"),
        (b"  [ ]", "document"),
        (b'\xef\xbb\xbf["x"]', "document"),
        (b'[{"a": "' + b"x" * 9000, "document"),  # an element longer than the sniff: undecided
        ((b"[INFO] x\n" * 2000)[:8192], "lines"),
    ],
)
def test_mode_of_a_name_without_a_telling_suffix(sniff: bytes, mode: str) -> None:
    assert mode_of("trades/app.log.1", sniff[:BINARY_SNIFF_BYTES]) == mode
