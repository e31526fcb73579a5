"""GcsSource (real gcp-storage-emulator): JSON Lines whatever the suffix, new objects in the order
of their first record, and a pass with records that cannot be stored is not "ok"."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from shipper.checkpoint import MemoryCheckpointer
from shipper.config import GcsSourceConfig
from shipper.models import LogRecord
from shipper.pipeline import Pipeline
from shipper.sinks import PushResult, RejectedEntry
from shipper.sources.gcs import GcsSource
from tests.shipper.gcs_emulator import GcsEmulator

pytestmark = pytest.mark.emulator
NS = 1_000_000_000


def make_source(emulator: GcsEmulator, bucket: Any) -> GcsSource:
    config = GcsSourceConfig(id=f"gcs-{bucket.name}", bucket=bucket.name, prefixes=["trades/"],
                             read_chunk_bytes=4096)
    return GcsSource(config, emulator.client)


def pull(source: GcsSource) -> list[LogRecord]:
    return [record for batch in source.pull(None) for record in batch.records]


def _jsonl(start_s: int, count: int, tag: str) -> bytes:
    return "".join(json.dumps({"ts": start_s + i, "msg": f"{tag} {i}"}) + "\n" for i in range(count)).encode()


@pytest.mark.parametrize("name", ["trades/records.json", "trades/records.json.gz"])
def test_json_lines_in_a_json_object_ship_every_line(emulator: GcsEmulator, bucket: Any, name: str) -> None:
    """Issue 14: JSON Lines content named `*.json` used to ship 1 of 5 records ("rest skipped")."""
    data = _jsonl(1_795_000_000, 5, "line")
    bucket.blob(name).upload_from_string(gzip.compress(data) if name.endswith(".gz") else data)
    records = pull(make_source(emulator, bucket))
    assert [r.line for r in records] == data.decode().splitlines()
    assert [r.ts_ns for r in records] == [(1_795_000_000 + i) * NS for i in range(5)]


def test_pretty_printed_and_one_line_json_documents_stay_documents(
    emulator: GcsEmulator, bucket: Any
) -> None:
    bucket.blob("trades/pretty.json").upload_from_string(json.dumps([{"a": 1}, {"a": 2}], indent=2).encode())
    bucket.blob("trades/oneline.json").upload_from_string(b'[{"a": 3}, {"a": 4}]\n')
    lines = sorted(r.line for r in pull(make_source(emulator, bucket)))
    assert lines == ['{"a":1}', '{"a":2}', '{"a":3}', '{"a":4}']


def test_new_objects_are_read_in_the_order_of_their_first_record(emulator: GcsEmulator, bucket: Any) -> None:
    """Uploaded newest first (the order that lost a third of a bucket to "too far behind"), read
    oldest first: each stream receives its history in time order."""
    day = 86_400
    base = 1_795_000_000
    for age, name in ((0, "trades/today.jsonl"), (1, "trades/yesterday.jsonl.gz"), (2, "trades/older.jsonl")):
        data = _jsonl(base - age * day, 3, name)
        bucket.blob(name).upload_from_string(gzip.compress(data) if name.endswith(".gz") else data)
    bucket.blob("trades/undated.log").upload_from_string(b"INFO no timestamp here\n")
    records = pull(make_source(emulator, bucket))
    objects = [r.metadata["object"] for r in records]
    assert list(dict.fromkeys(objects)) == ["trades/older.jsonl", "trades/yesterday.jsonl.gz",
                                            "trades/today.jsonl", "trades/undated.log"]


class RefusingSink:
    """Refuses records older than `cutoff_ns` as Loki does past its accepted age."""

    def __init__(self, cutoff_ns: int) -> None:
        self.cutoff_ns = cutoff_ns

    def push(self, records: list[LogRecord], *, source: str) -> PushResult:
        result = PushResult()
        for record in records:
            if record.ts_ns < self.cutoff_ns:
                result.rejected.append(RejectedEntry(record, "too_old"))
            else:
                result.accepted += 1
        return result


def test_a_pass_with_records_that_cannot_be_stored_is_partial(emulator: GcsEmulator, bucket: Any) -> None:
    data = _jsonl(1_000, 2, "ancient") + _jsonl(1_795_000_000, 3, "ok")
    bucket.blob("trades/a.jsonl").upload_from_string(data)
    source = make_source(emulator, bucket)
    result = Pipeline(source, RefusingSink(1_700_000_000 * NS), MemoryCheckpointer()).run_once()
    assert result.ok and result.outcome == "partial" and dict(result.rejected) == {"too_old": 2}
    assert result.accepted == 3
