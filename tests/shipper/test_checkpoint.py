from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipper.checkpoint import CHECKPOINT_FORMAT_VERSION, CheckpointError, FileCheckpointer


def test_commit_then_load_round_trips(tmp_path: Path) -> None:
    checkpointer = FileCheckpointer(tmp_path)
    cursor = {"objects": {"trades/a.jsonl": {"generation": "7", "offset": 120}}}
    checkpointer.commit("gcs", cursor)
    assert checkpointer.load("gcs") == cursor
    on_disk = json.loads((tmp_path / "gcs" / "checkpoint.json").read_text())
    assert on_disk["cursor"] == cursor and on_disk["source"] == "gcs"


def test_missing_checkpoint_is_none(tmp_path: Path) -> None:
    assert FileCheckpointer(tmp_path).load("never-ran") is None


def test_commit_leaves_no_temp_files(tmp_path: Path) -> None:
    checkpointer = FileCheckpointer(tmp_path)
    for offset in range(5):
        checkpointer.commit("s", {"offset": offset})
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["checkpoint.json"]
    assert checkpointer.load("s") == {"offset": 4}


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"cursor": 3}'])
def test_corrupt_checkpoint_is_a_clear_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "gcs" / "checkpoint.json"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        FileCheckpointer(tmp_path).load("gcs")
    assert str(path) in str(error.value)


def test_checkpoint_records_its_format_version_and_loads_it(tmp_path: Path) -> None:
    checkpointer = FileCheckpointer(tmp_path)
    checkpointer.commit("gcs", {"offset": 3})
    on_disk = json.loads((tmp_path / "gcs" / "checkpoint.json").read_text())
    assert on_disk["version"] == CHECKPOINT_FORMAT_VERSION
    assert checkpointer.load("gcs") == {"offset": 3}


@pytest.mark.parametrize("version", [CHECKPOINT_FORMAT_VERSION + 1, 0, "1", True, None])
def test_checkpoint_of_an_unknown_format_version_is_refused(tmp_path: Path, version: object) -> None:
    """A newer shipper's checkpoint (or a version this one never wrote) is not guessed at."""
    path = tmp_path / "gcs" / "checkpoint.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": version, "source": "gcs", "cursor": {"offset": 3}}))
    expected = f"format version {version!r}, this shipper reads version 1"
    with pytest.raises(CheckpointError, match=expected) as error:
        FileCheckpointer(tmp_path).load("gcs")
    assert str(path) in str(error.value)


def test_checkpoint_without_a_version_reads_as_the_first_format(tmp_path: Path) -> None:
    path = tmp_path / "gcs" / "checkpoint.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"source": "gcs", "cursor": {"offset": 3}}))
    assert FileCheckpointer(tmp_path).load("gcs") == {"offset": 3}


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpointer = FileCheckpointer(tmp_path)
    checkpointer.commit("gcs", {"offset": 1})

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("shipper.checkpoint.os.replace", crash)
    with pytest.raises(OSError):
        checkpointer.commit("gcs", {"offset": 2})
    assert checkpointer.load("gcs") == {"offset": 1}
    assert sorted(p.name for p in (tmp_path / "gcs").iterdir()) == ["checkpoint.json"]
