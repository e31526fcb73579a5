"""Pipeline: commit only after the sink answered for everything before the cursor. These tests
send one push at a time (`sequential`), so that a sink's answers follow the order of the pushes,
and of whole size from the first (no ramp-up); two pushes at once and the ramp-up are tested in
test_pipeline_in_flight.py."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import pytest

from shipper import loki_defaults, metrics
from shipper.checkpoint import CheckpointError, FileCheckpointer, MemoryCheckpointer
from shipper.models import LineMetadata, LogRecord, SharedMetadata
from shipper.pipeline import Pipeline
from shipper.sinks import PushResult, RejectedEntry, SinkUnavailable
from shipper.sinks.loki.prepare import Preparer
from shipper.sources.base import SourceError
from shipper.sources.memory import MemorySource

LABELS = {"source": "test", "service_name": "t", "level": "info"}
sequential = partial(Pipeline, push_concurrency=1, ramp_up_pushes=0)


def records(count: int) -> list[LogRecord]:
    return [LogRecord(1_700_000_000_000_000_000 + i, f"line {i}", LABELS) for i in range(count)]


class RecordingSink:
    """A Sink that keeps what it was given; fails on chosen push numbers; rejects chosen lines."""

    def __init__(self, *, fail_on: Sequence[int] = (), reject_lines: Sequence[str] = ()) -> None:
        self.pushes: list[list[LogRecord]] = []
        self.fail_on = set(fail_on)
        self.reject_lines = set(reject_lines)
        self.attempts = 0

    def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
        self.attempts += 1
        if self.attempts in self.fail_on:
            raise SinkUnavailable("scripted outage")
        self.pushes.append(list(records))
        rejected = [RejectedEntry(r, "too_far_behind") for r in records if r.line in self.reject_lines]
        accepted = [r for r in records if r.line not in self.reject_lines]
        return PushResult(accepted=len(accepted), accepted_bytes=sum(len(r.line) for r in accepted),
                          rejected=rejected)


def runs(source: str, outcome: str) -> float:
    labels = {"source": source, "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("shipper_runs_total", labels) or 0


def test_buffers_source_batches_up_to_the_sink_batch_size_and_commits_each_push() -> None:
    """A push is due when another batch of 4 would take it over 10 entries: 8, never 12 (which
    the Loki sink would send as 10 and 2)."""
    sink, checkpoints = RecordingSink(), MemoryCheckpointer()
    pipeline = sequential(MemorySource("p1", records(25), batch_size=4), sink, checkpoints,
                        max_entries=10, max_wait_seconds=60)
    result = pipeline.run_once()
    assert result.ok and result.accepted == 25
    assert [len(push) for push in sink.pushes] == [8, 8, 8, 1]
    assert result.commits == 4 and checkpoints.load("p1") == {"offset": 25}
    assert metrics.REGISTRY.get_sample_value("shipper_last_success_timestamp_seconds", {"source": "p1"})


def test_each_push_fits_the_loki_sinks_byte_limit_so_it_is_sent_as_one_request() -> None:
    """GCS-like records (object metadata, ~200-byte lines, batches of 1,000): as the Loki sink
    sizes them, every push stays within BATCH_MAX_BYTES (else the sink sends a full request and a
    small one) and holds as many batches as fit."""
    shared = SharedMetadata({"object": "trades/2026/12/06/bot-7.jsonl", "generation": "1764979200123456"})
    items = [LogRecord(1_700_000_000_000_000_000 + i, f'{{"n": {i}, "msg": "{"x" * 180}"}}', LABELS,
                       LineMetadata(shared, str(i))) for i in range(40_000)]
    sink = RecordingSink()
    result = sequential(MemorySource("fits", items, batch_size=1000), sink, MemoryCheckpointer(),
                      max_wait_seconds=60).run_once()
    assert result.ok and result.accepted == len(items)
    preparer, now_ns = Preparer(), items[-1].ts_ns + 10**9
    sizes = [sum(entry.size for entry in preparer.prepare(push, now_ns=now_ns).entries)
             for push in sink.pushes]
    batch_size = sizes[-1] / len(sink.pushes[-1]) * 1000
    assert all(size <= loki_defaults.BATCH_MAX_BYTES for size in sizes), sizes
    assert all(size > loki_defaults.BATCH_MAX_BYTES - batch_size for size in sizes[:-1]), sizes


def test_sink_unavailable_fails_the_run_and_keeps_the_last_acknowledged_cursor() -> None:
    sink, checkpoints = RecordingSink(fail_on=[2]), MemoryCheckpointer()
    before = runs("p2", "failure")
    result = sequential(MemorySource("p2", records(30), batch_size=10), sink, checkpoints,
                      max_entries=10).run_once()
    assert not result.ok and "scripted outage" in (result.error or "")
    assert checkpoints.load("p2") == {"offset": 10}
    assert runs("p2", "failure") == before + 1
    again = sequential(MemorySource("p2", records(30), batch_size=10), RecordingSink(), checkpoints,
                     max_entries=10).run_once()
    assert again.ok and again.accepted == 20 and checkpoints.load("p2") == {"offset": 30}


def test_rejected_entries_are_reported_and_the_cursor_moves_past_them() -> None:
    sink, checkpoints = RecordingSink(reject_lines=["line 3"]), MemoryCheckpointer()
    result = sequential(MemorySource("p3", records(5)), sink, checkpoints).run_once()
    assert result.ok and result.accepted == 4 and result.rejected == {"too_far_behind": 1}
    assert checkpoints.load("p3") == {"offset": 5}


def test_source_error_is_a_failed_run() -> None:
    class Broken(MemorySource):
        def pull(self, cursor):  # type: ignore[no-untyped-def]
            raise SourceError("bucket is gone")
            yield

    result = sequential(Broken("p4", []), RecordingSink(), MemoryCheckpointer()).run_once()
    assert not result.ok and "bucket is gone" in (result.error or "")


def test_unwritable_checkpoint_is_one_failed_run_also_through_the_scheduler_job() -> None:
    from shipper.scheduler import make_job

    class Unwritable(MemoryCheckpointer):
        def commit(self, source_id: str, cursor: dict[str, object]) -> None:
            raise CheckpointError("cannot write checkpoint gs://state/p5/checkpoint.json: 503")

    before = runs("p5", "failure")
    pipeline = sequential(MemorySource("p5", records(5)), RecordingSink(), Unwritable())
    result = pipeline.run_once()
    assert not result.ok and "cannot write checkpoint" in (result.error or "")
    assert runs("p5", "failure") == before + 1
    make_job(pipeline)()
    assert runs("p5", "failure") == before + 2


def test_checkpoint_lag_is_measured_from_the_newest_committed_record() -> None:
    pipeline = sequential(MemorySource("p5", records(3)), RecordingSink(), MemoryCheckpointer(),
                        wall_clock=lambda: 1_700_000_100.0)
    assert pipeline.run_once().ok
    lag = metrics.REGISTRY.get_sample_value("shipper_checkpoint_lag_seconds", {"source": "p5"})
    assert lag == pytest.approx(100.0, abs=1e-3)


def test_corrupt_checkpoint_is_an_error_naming_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    checkpoints = FileCheckpointer(tmp_path)
    checkpoints.path_for("p6").parent.mkdir(parents=True)
    checkpoints.path_for("p6").write_text("{not json")
    pipeline = sequential(MemorySource("p6", records(1)), RecordingSink(), checkpoints)
    with pytest.raises(CheckpointError, match=r"p6/checkpoint\.json"):
        pipeline.run_once()


def test_max_wait_flushes_a_slow_source() -> None:
    ticks = iter(range(100))
    sink = RecordingSink()
    sequential(MemorySource("p7", records(6), batch_size=2), sink, MemoryCheckpointer(), max_entries=100,
             max_wait_seconds=2, clock=lambda: float(next(ticks))).run_once()
    assert len(sink.pushes) > 1 and sum(len(p) for p in sink.pushes) == 6


def test_the_garbage_collector_is_paused_per_push_cycle_and_restored() -> None:
    import gc

    states: list[bool] = []

    class ObservingSink(RecordingSink):
        def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
            states.append(gc.isenabled())
            return super().push(records, source=source)

    assert gc.isenabled()
    sink = ObservingSink(fail_on=[3])
    pipeline = sequential(MemorySource("gc1", records(30), batch_size=5), sink, MemoryCheckpointer(),
                        max_entries=10, max_wait_seconds=60)
    result = pipeline.run_once()
    assert not result.ok and states == [False, False, False]  # paused in every push, the failed third too
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that disabled it itself keeps it disabled
        pipeline = sequential(MemorySource("gc2", records(3)), RecordingSink(), MemoryCheckpointer())
        assert pipeline.run_once().ok
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_replica_that_stops_leading_mid_pass_stops_before_its_next_push_or_commit() -> None:
    """Leadership is asked before each push and again before its commit (a push can retry long)."""
    answers = iter([True, True, True, False])  # push 1 + commit 1, push 2, then lost before commit 2
    sink, checkpoints = RecordingSink(), MemoryCheckpointer()
    pipeline = sequential(MemorySource("lead1", records(30), batch_size=10), sink, checkpoints,
                        max_entries=10, still_leading=lambda: next(answers))
    stopped_before = runs("lead1", "stopped")
    result = pipeline.run_once()
    assert result.stopped and result.ok and result.error is None
    assert [len(push) for push in sink.pushes] == [10, 10]  # the third batch was never pushed
    assert checkpoints.load("lead1") == {"offset": 10}  # the second push is not committed
    assert runs("lead1", "stopped") == stopped_before + 1 and runs("lead1", "failure") == 0
    resumed = sequential(MemorySource("lead1", records(30), batch_size=10), RecordingSink(), checkpoints,
                       max_entries=10).run_once()
    assert resumed.ok and not resumed.stopped and resumed.accepted == 20
