"""Crash safety: GCS emulator -> Pipeline -> LokiSink -> LokiMock (decodes pushes, dedups as Loki).

A run killed after a push but before its checkpoint write, or before a push, restarts from the
state directory and ends with exactly the content of an uninterrupted run: every source line,
none missing, none twice (counted as distinct (stream, ts, line))."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipper.checkpoint import FileCheckpointer
from shipper.config import GcsSourceConfig
from shipper.models import Cursor, LogRecord
from shipper.pipeline import INFLIGHT_SUFFIX, Pipeline
from shipper.sinks import PushResult
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sources.gcs import GcsSource
from tests.loki_mock import LokiMock
from tests.shipper.gcs_emulator import GcsEmulator, running_emulator

pytestmark = pytest.mark.emulator
BUCKET = "crash-bucket"


class Crash(Exception):
    """Stands in for the process dying at that point."""


class CrashingCheckpointer(FileCheckpointer):
    def __init__(self, state_dir: Path, crash_on_commit: int) -> None:
        super().__init__(state_dir)
        self.commits = 0
        self.crash_on_commit = crash_on_commit

    def commit(self, source_id: str, cursor: Cursor) -> None:
        if source_id.endswith(INFLIGHT_SUFFIX):  # the pipeline's "pass in flight" marker
            super().commit(source_id, cursor)
            return
        self.commits += 1
        if self.commits == self.crash_on_commit:
            raise Crash("killed after the push, before the checkpoint write")
        super().commit(source_id, cursor)


class CrashingSink:
    def __init__(self, inner: LokiSink, crash_on_push: int) -> None:
        self.inner = inner
        self.pushes = 0
        self.crash_on_push = crash_on_push

    def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
        self.pushes += 1
        if self.pushes == self.crash_on_push:
            raise Crash("killed before the push")
        return self.inner.push(records, source=source)


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running_emulator() as running:
        bucket = running.bucket(BUCKET)
        recent = int(time.time()) - 3600
        bucket.blob("trades/no-timestamps.jsonl").upload_from_string(
            "".join(json.dumps({"order": i, "level": "info"}) + "\n" for i in range(40)).encode())
        bucket.blob("trades/with-timestamps.jsonl").upload_from_string(
            "".join(json.dumps({"ts": recent + i, "n": i}) + "\n" for i in range(33)).encode())
        bucket.blob("reflections/notes.log.gz").upload_from_string(
            gzip.compress("".join(f"ERROR reflection {i}\n" for i in range(27)).encode()))
        yield running


def source_lines(emulator: GcsEmulator) -> set[str]:
    lines: set[str] = set()
    for blob in emulator.client.list_blobs(BUCKET):
        data = blob.download_as_bytes(raw_download=True)
        lines.update((gzip.decompress(data) if blob.name.endswith(".gz") else data).decode().splitlines())
    return lines


def make_sink(mock: LokiMock) -> LokiSink:
    client = httpx.Client(transport=httpx.MockTransport(mock.handler))
    return LokiSink(LokiSinkConfig(url="http://loki.test", batch_max_entries=8), client)


def make_pipeline(emulator: GcsEmulator, sink: Any, checkpointer: FileCheckpointer) -> Pipeline:
    config = GcsSourceConfig(id="gcs", bucket=BUCKET, prefixes=["trades/", "reflections/"])
    source = GcsSource(config, emulator.client, batch_records=7)
    return Pipeline(source, sink, checkpointer, max_entries=10, max_wait_seconds=60)


@pytest.fixture(scope="module")
def uninterrupted(emulator: GcsEmulator, tmp_path_factory: pytest.TempPathFactory) -> set[Any]:
    mock = LokiMock()
    state = FileCheckpointer(tmp_path_factory.mktemp("state"))
    result = make_pipeline(emulator, make_sink(mock), state).run_once()
    assert result.ok and result.accepted == 100
    assert result.pushes >= 6  # the crash points below fall inside the run
    mock.assert_clean()
    return mock.distinct()


def assert_complete(mock: LokiMock, expected: set[Any], emulator: GcsEmulator) -> None:
    mock.assert_clean()
    stored = mock.distinct()
    assert stored == expected
    assert len(stored) == 100  # no entry twice under another timestamp or stream
    assert {line for _, _, line in stored} == source_lines(emulator)


@pytest.mark.parametrize("crash_on_commit", [2, 4, 7])  # commit 1 registers the new objects
def test_crash_after_push_before_checkpoint(
    emulator: GcsEmulator, uninterrupted: set[Any], tmp_path: Path, crash_on_commit: int
) -> None:
    mock = LokiMock()
    crashing = CrashingCheckpointer(tmp_path, crash_on_commit)
    with pytest.raises(Crash):
        make_pipeline(emulator, make_sink(mock), crashing).run_once()
    pushed_before_restart = sum(push.entry_count for push in mock.requests)
    assert pushed_before_restart > 0
    result = make_pipeline(emulator, make_sink(mock), FileCheckpointer(tmp_path)).run_once()
    assert result.ok
    resent = sum(push.entry_count for push in mock.requests) - pushed_before_restart
    assert resent > 100 - pushed_before_restart  # the unacknowledged batch really went out twice
    assert_complete(mock, uninterrupted, emulator)


@pytest.mark.parametrize("crash_on_push", [1, 3, 6])
def test_crash_before_push(
    emulator: GcsEmulator, uninterrupted: set[Any], tmp_path: Path, crash_on_push: int
) -> None:
    mock = LokiMock()
    with pytest.raises(Crash):
        crashing = CrashingSink(make_sink(mock), crash_on_push)
        make_pipeline(emulator, crashing, FileCheckpointer(tmp_path)).run_once()
    assert len(mock.distinct()) < 100
    assert make_pipeline(emulator, make_sink(mock), FileCheckpointer(tmp_path)).run_once().ok
    assert_complete(mock, uninterrupted, emulator)


def test_a_second_pass_after_completion_ships_nothing(emulator: GcsEmulator, tmp_path: Path) -> None:
    mock = LokiMock()
    assert make_pipeline(emulator, make_sink(mock), FileCheckpointer(tmp_path)).run_once().ok
    requests = len(mock.requests)
    again = make_pipeline(emulator, make_sink(mock), FileCheckpointer(tmp_path)).run_once()
    assert again.ok and again.accepted == 0 and len(mock.requests) == requests
