"""Issue 21.6 on the real Loki: a resend after an unclean stop must not be stored twice.

Loki drops an identical entry at write time only while it is in the stream's open head block;
a resend of entries already cut into blocks or chunks is stored again, and although log queries
hide the copy, `count_over_time` (metric queries, alert rules) counts it. After a pass that died
between its push and its checkpoint, the next pass asks Loki what it holds for each stream and
time range and sends only the rest."""

from __future__ import annotations

import time

import httpx
import pytest

from shipper.checkpoint import FileCheckpointer
from shipper.models import Cursor, LogRecord
from shipper.pipeline import INFLIGHT_SUFFIX, Pipeline
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sources.memory import MemorySource
from tests.real_loki import RealLoki, run_id

LINES = 6000  # ~1 MB: several of Loki's 256 KB blocks, so a blind resend lands outside the head block


class Killed(Exception):
    """The process dying after Loki stored the push, before the checkpoint was written."""


class DyingCheckpointer(FileCheckpointer):
    def commit(self, source_id: str, cursor: Cursor) -> None:
        if not source_id.endswith(INFLIGHT_SUFFIX) and cursor.get("offset"):
            raise Killed
        super().commit(source_id, cursor)


def _records(run: str, now_ns: int) -> list[LogRecord]:
    labels = {"source": "gcs", "service_name": "trades", "run": run, "level": "info"}
    return [LogRecord(now_ns - (LINES - i) * 1_000_000, f"trade {i} " + "x" * 150, labels,
                      {"line_no": str(i)})
            for i in range(LINES)]


@pytest.mark.parametrize("check", [True, False], ids=["resend-checked", "blind-resend"])
def test_resend_after_unclean_stop_is_not_counted_twice(real_loki: RealLoki, tmp_path, check: bool) -> None:
    run, now = run_id("resend"), time.time_ns()
    source = MemorySource("resend", _records(run, now), batch_size=LINES)
    with httpx.Client() as client:
        sink = LokiSink(LokiSinkConfig(url=real_loki.url), client)
        with pytest.raises(Killed):
            Pipeline(source, sink, DyingCheckpointer(tmp_path), max_entries=LINES).run_once()
        checkpoints = FileCheckpointer(tmp_path)
        if not check:  # what the old code did: no marker, so no question to Loki
            checkpoints.commit("resend" + INFLIGHT_SUFFIX, {"clean": True})
        result = Pipeline(source, LokiSink(LokiSinkConfig(url=real_loki.url), client), checkpoints,
                          max_entries=LINES).run_once()
    assert result.outcome == "success" and result.accepted == LINES
    selector = f'{{run="{run}"}}'
    start, end = now - 60 * 1_000_000_000, now + 1_000_000_000
    assert len(real_loki.all_lines(selector, start_ns=start, end_ns=end)) == LINES  # log queries dedup
    counted = real_loki.count(selector, start_ns=start, end_ns=end)
    if check:
        assert counted == LINES
        assert checkpoints.load("resend" + INFLIGHT_SUFFIX) == {"clean": True}
    else:
        assert counted > LINES  # Loki stored the blind resend again: why the check exists
