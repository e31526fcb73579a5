"""One pass of one source: load cursor -> source.pull -> buffer -> sink.push -> commit.

The committed cursor only ever moves to the cursor of the last batch whose records (and all
records before them) the sink acknowledged or definitively rejected (counted and reported by the
sink). SinkUnavailable, or a source error, ends the pass without committing anything further: the
run is a failure (shipper_runs{outcome="failure"}) and the next pass resends from the last commit,
which Loki dedups because timestamps are deterministic. A corrupt checkpoint (CheckpointError) is
not a run failure but a startup error and propagates to the caller.

`still_leading` (leader election) is asked before every push and every commit: a replica whose
Lease lapsed in the middle of a pass stops there (outcome "stopped"), so it neither ships beside
the new leader nor moves the shared checkpoint under it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from shipper import losses, metrics
from shipper.checkpoint import Checkpointer, CheckpointError
from shipper.models import Batch, Cursor, LogRecord
from shipper.records import gc_paused
from shipper.sinks import Sink, SinkUnavailable
from shipper.sources.base import Source, SourceError

log = logging.getLogger(__name__)

_RECORD_OVERHEAD_BYTES = 64  # labels + metadata + framing, for buffer sizing only
_line_of = attrgetter("line")
_ts_of = attrgetter("ts_ns")


@dataclass(slots=True)
class PassResult:
    source: str
    ok: bool = True
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    pushes: int = 0
    commits: int = 0
    newest_ts_ns: int | None = None
    error: str | None = None
    stopped: bool = False  # no longer the leader: the pass ended early, nothing failed
    skipped: Counter[str] = field(default_factory=Counter)  # records the source did not ship (losses.py)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def partial(self) -> bool:
        """The pass finished, but some records could not be stored (refused or skipped)."""
        return self.ok and not self.stopped and bool(self.rejected_total or sum(self.skipped.values()))


class _LeadershipLost(Exception):
    pass


def _always() -> bool:
    return True


class Pipeline:
    def __init__(
        self,
        source: Source,
        sink: Sink,
        checkpointer: Checkpointer,
        *,
        checkpoint_id: str | None = None,
        max_entries: int = 10_000,
        max_bytes: int = 1 << 20,
        max_wait_seconds: float = 1.0,
        on_progress: Callable[[int], None] | None = None,
        still_leading: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.sink = sink
        self.checkpointer = checkpointer
        self.checkpoint_id = checkpoint_id or source.id
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_wait_seconds = max_wait_seconds
        self.on_progress = on_progress
        self.still_leading = still_leading or _always
        self._clock = clock
        self._wall_clock = wall_clock
        self._newest_committed_ns: int | None = None  # for the lag gauge across passes

    def run_once(self) -> PassResult:
        """One pass. Raises CheckpointError for an unreadable checkpoint (the pass never started);
        a checkpoint that cannot be written, like other failures, is returned as a failed
        PassResult and counted once."""
        result = PassResult(self.source.id)
        cursor = self.checkpointer.load(self.checkpoint_id)
        started = self._clock()
        skipped_before = losses.skipped_so_far(self.source.id)
        try:
            self._ship(cursor, result)
        except _LeadershipLost:
            result.stopped = True
        except (SinkUnavailable, SourceError, CheckpointError) as exc:
            result.ok, result.error = False, f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            result.ok, result.error = False, f"{type(exc).__name__}: {exc}"
            self._finish(result, started)
            raise
        result.skipped = losses.skipped_since(self.source.id, skipped_before, result.rejected)
        self._finish(result, started)
        return result

    def _ship(self, cursor: Cursor | None, result: PassResult) -> None:
        batches = self.source.pull(cursor)
        while True:
            # One push cycle with the cyclic GC paused: its records are built, pushed and dropped
            # before a collection could scan them (and promote them, which triggers full
            # collections of the whole heap); cyclic garbage made meanwhile is collected after.
            with gc_paused():
                more = self._fill_and_push(batches, result)
            if not more:
                return

    def _fill_and_push(self, batches: Iterator[Batch], result: PassResult) -> bool:
        """Buffer batches until a push is due, push and commit; False once the source is done."""
        buffer: list[LogRecord] = []
        buffered_bytes = 0
        pending: Cursor | None = None
        first_buffered_at = 0.0
        for batch in batches:
            if not batch.records and not buffer:
                # a checkpoint alone (e.g. GCS registers new objects before reading them): it
                # must be committed before what follows is pushed, not merged into that push
                self._push_and_commit([], batch.cursor, result)
                continue
            if not buffer:
                first_buffered_at = self._clock()
            records = batch.records
            buffer += records
            buffered_bytes += sum(map(len, map(_line_of, records))) + _RECORD_OVERHEAD_BYTES * len(records)
            pending = batch.cursor
            if (
                len(buffer) >= self.max_entries
                or buffered_bytes >= self.max_bytes
                or self._clock() - first_buffered_at >= self.max_wait_seconds
            ):
                self._push_and_commit(buffer, pending, result)
                return True
        if pending is not None:
            self._push_and_commit(buffer, pending, result)
        return False

    def _check_leadership(self) -> None:
        if not self.still_leading():
            raise _LeadershipLost

    def _push_and_commit(self, records: list[LogRecord], cursor: Cursor, result: PassResult) -> None:
        self._check_leadership()
        if records:
            pushed = self.sink.push(records, source=self.source.id)
            result.pushes += 1
            result.accepted += pushed.accepted
            for rejected in pushed.rejected:
                result.rejected[rejected.reason] += 1
            newest = max(map(_ts_of, records))
            result.newest_ts_ns = max(result.newest_ts_ns or newest, newest)
            self._check_leadership()  # the push can take long (retries): ask again
        self.checkpointer.commit(self.checkpoint_id, cursor)
        result.commits += 1
        if result.newest_ts_ns is not None:
            self._newest_committed_ns = max(self._newest_committed_ns or 0, result.newest_ts_ns)
        if self.on_progress is not None and records:
            self.on_progress(len(records))

    def _finish(self, result: PassResult, started: float) -> None:
        source = self.source.id
        outcome = ("stopped" if result.stopped else "partial" if result.partial
                   else "success" if result.ok else "failure")
        metrics.RUNS.labels(source=source, outcome=outcome).inc()
        if outcome in ("success", "partial"):  # the pass finished
            metrics.LAST_SUCCESS.labels(source=source).set(self._wall_clock())
        if self._newest_committed_ns is not None:
            lag = self._wall_clock() - self._newest_committed_ns / 1e9
            metrics.CHECKPOINT_LAG.labels(source=source).set(max(0.0, lag))
        fields = {
            "event": "source_pass", "source": source, "checkpoint": self.checkpoint_id, "outcome": outcome,
            "accepted": result.accepted, "rejected": dict(result.rejected), "skipped": dict(result.skipped),
            "pushes": result.pushes,
            "commits": result.commits, "duration_seconds": round(self._clock() - started, 3),
        }
        if result.stopped:
            log.warning("pass of %s stopped: this replica is no longer the leader (%d shipped)", source,
                        result.accepted, extra=fields)
        elif result.partial:
            log.warning("pass of %s partial: %d shipped, %d refused by Loki %s, %d skipped %s", source,
                        result.accepted, result.rejected_total, dict(result.rejected),
                        sum(result.skipped.values()), dict(result.skipped), extra=fields)
        elif result.ok:
            log.info("pass of %s done: %d shipped, %d rejected", source, result.accepted,
                     result.rejected_total, extra=fields)
        else:
            log.error("pass of %s failed, checkpoint kept at the last acknowledged batch: %s", source,
                      result.error, extra={**fields, "error": result.error})
