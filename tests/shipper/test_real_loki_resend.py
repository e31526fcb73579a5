"""Issue 21.6 on the real Loki: a resend after an unclean stop must not be stored twice.

Loki drops an identical entry at write time only while it is in the stream's open head block;
a resend of entries already cut into blocks or chunks is stored again, and although log queries
hide the copy, `count_over_time` (metric queries, alert rules) counts it. After a pass that died
between its push and its checkpoint, the next pass asks Loki what it holds for each stream and
time range and sends only the rest."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cramjam
import httpx
import pytest

from shipper.checkpoint import FileCheckpointer
from shipper.models import Cursor, LogRecord
from shipper.pipeline import INFLIGHT_SUFFIX, UNSETTLED_AT_MOST, PassResult, Pipeline
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
def test_resend_after_unclean_stop_is_not_counted_twice(
    real_loki: RealLoki, tmp_path: Path, check: bool
) -> None:
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


PUSH = 2000  # lines a push: ~330 KB, so a blind resend of one lands outside the head block too


class PushTwoFailsBesidePushThree(httpx.BaseTransport):
    """The real Loki, except that push 2 (the one starting at line 2000) gets no answer: it fails
    as a refused connection, once push 3, sent beside it, was stored and answered - and so does
    every retry of it."""

    def __init__(self) -> None:
        self._loki = httpx.HTTPTransport()
        self.third_answered = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/loki/api/v1/push":
            body = bytes(cramjam.snappy.decompress_raw(request.read()))
            if f"trade {PUSH} ".encode() in body:
                assert self.third_answered.wait(30), "push 3 was not sent beside push 2"
                raise httpx.ConnectError("scripted outage", request=request)
            if f"trade {2 * PUSH} ".encode() in body:
                response = self._loki.handle_request(request)
                response.read()
                self.third_answered.set()
                return response
        return self._loki.handle_request(request)


def test_a_push_stored_beside_a_failed_one_is_checked_before_it_is_resent(
    real_loki: RealLoki, tmp_path: Path
) -> None:
    """Two pushes at once: push 2 fails while Loki stores push 3 beside it. The next pass's first
    check (push 2's records) finds nothing held; the checks must go on over what the failed pass
    may have left unsettled, or push 3 would be sent again and counted twice."""
    run, now = run_id("beside"), time.time_ns()
    labels = {"source": "gcs", "service_name": "trades", "run": run, "level": "info"}
    items = [LogRecord(now - (3 * PUSH - i) * 1_000_000, f"trade {i} " + "x" * 150, labels,
                       {"line_no": str(i)})
             for i in range(3 * PUSH)]
    checkpoints = FileCheckpointer(tmp_path)

    def ship(sink: LokiSink) -> PassResult:
        return Pipeline(MemorySource("beside", items, batch_size=PUSH), sink, checkpoints, max_entries=PUSH,
                        pushes_in_flight=2, push_concurrency=2, ramp_up_pushes=0).run_once()

    faults = PushTwoFailsBesidePushThree()
    with httpx.Client(transport=faults) as client:
        failed = ship(LokiSink(LokiSinkConfig(url=real_loki.url, retry_min_backoff_seconds=0.05,
                                              retry_max_backoff_seconds=0.1, retry_max_total_seconds=0.5),
                               client))
    assert failed.outcome == "failure" and faults.third_answered.is_set()
    assert checkpoints.load("beside") == {"offset": PUSH}
    assert checkpoints.load("beside" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 2 * PUSH}

    with httpx.Client() as client:
        result = ship(LokiSink(LokiSinkConfig(url=real_loki.url), client))
    assert result.outcome == "success" and result.accepted == 2 * PUSH
    selector = f'{{run="{run}"}}'
    start, end = now - 60 * 1_000_000_000, now + 1_000_000_000
    assert len(real_loki.all_lines(selector, start_ns=start, end_ns=end)) == 3 * PUSH
    assert real_loki.count(selector, start_ns=start, end_ns=end) == 3 * PUSH  # none stored twice
    assert checkpoints.load("beside" + INFLIGHT_SUFFIX) == {"clean": True}
