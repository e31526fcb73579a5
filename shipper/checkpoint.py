"""Per-source checkpoints: <state>/<source id>/checkpoint.json, written atomically.

The state lives in SHIPPER_STATE_DIR (a local directory or a PVC) or, when SHIPPER_STATE_URL is
`gs://bucket/prefix`, in GCS, so that shipper replicas on different nodes (leader election)
share one set of checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from shipper.models import Cursor

CHECKPOINT_FILE_NAME = "checkpoint.json"
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint exists but cannot be read or parsed; never silently restart from zero."""


class Checkpointer(Protocol):
    def load(self, source_id: str) -> Cursor | None: ...

    def commit(self, source_id: str, cursor: Cursor) -> None: ...

    def location(self, source_id: str) -> str: ...


def encode_checkpoint(source_id: str, cursor: Cursor) -> bytes:
    return json.dumps(
        {"version": CHECKPOINT_FORMAT_VERSION, "source": source_id, "cursor": cursor},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def decode_checkpoint(raw: bytes, where: str) -> Cursor:
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {where} is corrupt ({exc}); fix or delete it to re-ship from the start"
        ) from exc
    cursor = document.get("cursor") if isinstance(document, dict) else None
    if not isinstance(cursor, dict):
        raise CheckpointError(f"checkpoint {where} has no 'cursor' object; fix or delete it")
    version = document.get("version", CHECKPOINT_FORMAT_VERSION)
    if version != CHECKPOINT_FORMAT_VERSION or isinstance(version, bool):
        # a newer shipper's cursor may mean something else: reading it could skip or resend data
        raise CheckpointError(
            f"checkpoint {where} has format version {version!r}, this shipper reads version "
            f"{CHECKPOINT_FORMAT_VERSION}: run the shipper release that wrote it, or delete it to "
            "re-ship from the start"
        )
    return cursor


class FileCheckpointer:
    """Write temp file + fsync + rename + fsync(dir): a crash leaves the old or the new file."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)

    def path_for(self, source_id: str) -> Path:
        return self.state_dir / source_id / CHECKPOINT_FILE_NAME

    def location(self, source_id: str) -> str:
        return str(self.path_for(source_id))

    def load(self, source_id: str) -> Cursor | None:
        path = self.path_for(source_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        return decode_checkpoint(raw, str(path))

    def commit(self, source_id: str, cursor: Cursor) -> None:
        path = self.path_for(source_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = encode_checkpoint(source_id, cursor)
        fd, tmp_name = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(payload)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class MemoryCheckpointer:
    """Checkpointer kept in a dict, for tests and `shipper once --dry-run` style use."""

    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}

    def location(self, source_id: str) -> str:
        return f"memory:{source_id}"

    def load(self, source_id: str) -> Cursor | None:
        cursor = self.cursors.get(source_id)
        return json.loads(json.dumps(cursor)) if cursor is not None else None

    def commit(self, source_id: str, cursor: Cursor) -> None:
        self.cursors[source_id] = json.loads(json.dumps(cursor))
