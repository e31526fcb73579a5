"""The GCS cursor entry (ObjectEntry) against checkpoints written when entries were plain dicts:
they load, dump back byte for byte, and a pass resumes from them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from shipper.checkpoint import FileCheckpointer, decode_checkpoint, encode_checkpoint
from shipper.config import GcsSourceConfig
from shipper.sources.gcs import GcsSource, ObjectEntry, first_base_ns
from shipper.sources.gcs.cursor import ObjectStates
from tests.shipper.gcs_emulator import GcsEmulator

# Written by the dict-based source (before ObjectEntry): one entry of each shape it wrote, and one
# from before base_ns, head and first_ns were kept.
OLD_CHECKPOINT = (
    b'{"cursor":{"objects":{'
    b'"trades/a.log":{"base_ns":1764928800000123000,"done":true,"first_ns":1764928800000123001,'
    b'"generation":1764928800123456,"gzip":false,"head":"8:0f6b4c6d2a9e1f3b","line_no":2,"mode":"lines",'
    b'"offset":8,"size":8,"tail":"74776f0a"},'
    b'"trades/b.json":{"base_ns":1764928800000456000,"done":false,"first_ns":1764928800000456001,'
    b'"generation":1764928800223456,"gzip":true,"line_no":50,"mode":"document","offset":50,"size":900},'
    b'"trades/c.bin":{"base_ns":1764928800000789000,"done":true,"generation":1764928800323456,'
    b'"gzip":false,"line_no":0,"mode":"binary","offset":0,"size":200},'
    b'"trades/d.log":{"base_ns":1764928800000999000,"done":false,"first_ns":1764928800000999001,'
    b'"generation":1764928800423456,"line_no":0,"offset":0,"size":30},'
    b'"trades/old.log":{"done":true,"generation":5,"gzip":false,"line_no":3,"mode":"lines","offset":12,'
    b'"size":12,"tail":"6c6173740a"}'
    b'}},"source":"gcs","version":1}'
)


def test_an_old_checkpoint_loads_and_is_written_back_byte_for_byte() -> None:
    cursor = decode_checkpoint(OLD_CHECKPOINT, "old")
    saved = cursor["objects"]
    for entry in saved.values():
        assert ObjectEntry.load(entry).dump() == entry
    assert encode_checkpoint("gcs", ObjectStates(saved).cursor()) == OLD_CHECKPOINT
    moved = ObjectStates(saved)
    for name in saved:  # every entry re-dumped from its ObjectEntry: still the same bytes
        entry = moved.get(name)
        assert entry is not None
        moved.set(name, entry)
    assert encode_checkpoint("gcs", moved.cursor()) == OLD_CHECKPOINT


def test_missing_keys_of_an_old_entry_read_as_not_known() -> None:
    entry = ObjectEntry.load(decode_checkpoint(OLD_CHECKPOINT, "old")["objects"]["trades/old.log"])
    assert (entry.base_ns, entry.first_ns, entry.head) == (None, None, None)
    assert (entry.generation, entry.offset, entry.line_no, entry.done) == (5, 12, 3, True)
    assert entry.tail == "6c6173740a"


@pytest.mark.emulator
def test_a_pass_appends_after_an_old_form_entry(emulator: GcsEmulator, bucket: Any, tmp_path: Path) -> None:
    """A dict-form entry written by the old source (with its tail and head) still recognises an
    append: only the new line ships, numbered and timed after the old ones."""
    name, first = "trades/app.log", b"one\ntwo\n"
    bucket.blob(name).upload_from_string(first)
    blob = bucket.get_blob(name)
    updated = blob.updated
    base = first_base_ns(name, int(updated.timestamp()) * 1_000_000_000 + updated.microsecond * 1000)
    head = f"{len(first)}:{hashlib.blake2b(first, digest_size=8).hexdigest()}"
    old_entry = {"base_ns": base, "done": True, "first_ns": base + 1, "generation": blob.generation,
                 "gzip": False, "head": head, "line_no": 2, "mode": "lines", "offset": len(first),
                 "size": len(first), "tail": first.hex()}
    state = FileCheckpointer(tmp_path)
    state.path_for("g").parent.mkdir(parents=True)
    state.path_for("g").write_bytes(encode_checkpoint("g", {"objects": {name: old_entry}}))
    bucket.blob(name).upload_from_string(first + b"three\n")  # a new generation, same start
    config = GcsSourceConfig(id="g", bucket=bucket.name, prefixes=["trades/"], read_chunk_bytes=4096)
    batches = list(GcsSource(config, emulator.client).pull(state.load("g")))
    records = [record for batch in batches for record in batch.records]
    assert [(r.line, r.ts_ns, r.metadata["line_no"]) for r in records] == [("three", base + 3, "3")]
    assert batches[-1].cursor["objects"][name]["offset"] == len(first) + len(b"three\n")
