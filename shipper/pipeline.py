"""One pass of one source: load cursor -> source.pull -> buffer -> sink.push -> commit.

The committed cursor only ever moves to the cursor of the last batch whose records (and all
records before them) the sink acknowledged or definitively rejected (counted and reported by the
sink). SinkUnavailable, or a source error, ends the pass without committing anything further: the
run is a failure (shipper_runs{outcome="failure"}) and the next pass resends from the last commit,
which Loki dedups because timestamps are deterministic. A corrupt checkpoint (CheckpointError) is
not a run failure but a startup error and propagates to the caller.

`still_leading` (leader election, and not shutting down) is asked before every push and every
commit: a replica whose Lease lapsed in the middle of a pass stops there (outcome "stopped"), so
it neither ships beside the new leader nor moves the shared checkpoint under it - nor the unclean
marker: the next leader checks what the stopped pass may have left in Loki.

Outcome of a pass: "success"; "partial" when it finished but some records could not be stored
(counted by reason in PassResult.rejected - e.g. older than Loki accepts, a line Loki refuses):
the pass must not read as ok; "failure"; "stopped".

Pushes in flight. With `pushes_in_flight` >= 1 (the default), pushing and committing run on
background threads (push_queue.py) while this thread reads and builds the next batches, at most
`pushes_in_flight` batches ahead, and encodes them when the sink can (PreparingSink: the sink
routes them again when it sends them, with what Loki acknowledged meanwhile). Up to
`push_concurrency` pushes are sent at once (a Loki across a network is not waited for one round
trip at a time), and their commits are still made one at a time in the order the batches were
read, each once its own push and all before it were answered, so the rule above holds as it is - a
checkpoint moves only past pushes Loki answered, and when a push fails (or leadership is lost)
nothing handed over after it is committed, and nothing not yet sent is pushed; the batches read
ahead are dropped and read again by the next pass (a push sent beside the failed one is resent
then, and checked as below). A source error ends the reading; the batches handed over before it
are still pushed and committed. 0 does everything on this thread, one batch at a time.

What is pushed between two commits spans less than MAX_UNCOMMITTED_SPAN_NS of timestamps: a
batch that would widen the buffer past it is pushed after the buffer is committed, and a push
that would widen what is unsettled at once past it is sent only after every push before it has
settled. A resend then takes the same Loki streams as the first send (see models.py).

Resends after an unclean stop. A pass that pushed marks `<checkpoint id>.inflight` unclean
before its first push, with how many records it may push beyond its last commit (a push for each
of `pushes_in_flight`, of `max_entries` at most), and clean when it ends without failing. When the
previous pass did not end cleanly (killed, or a push whose answer never came), what it pushed
after its last commit may already be in Loki: a resend that lands in another chunk is dropped by
log queries but counted twice by metric queries (count_over_time, alert rules). So the first
pushes of the next pass ask the sink which of their records Loki already holds (a bounded query
per stream and time range, `drop_present`) and send only the rest, until they have covered that
many records and the last of them found nothing already there: with pushes sent at once, a push
that failed may lie between two that Loki took, so one push finding nothing proves nothing about
the next. Such pushes are sent one at a time, each after the one before it settled."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Protocol, runtime_checkable

from shipper import loki_defaults, losses, metrics
from shipper.checkpoint import Checkpointer, CheckpointError
from shipper.config import DEFAULT_PUSH_CONCURRENCY, DEFAULT_PUSHES_IN_FLIGHT
from shipper.models import MAX_UNCOMMITTED_SPAN_NS, Batch, Cursor, LogRecord
from shipper.push_queue import PushQueue
from shipper.records import gc_paused
from shipper.sinks import PreparingSink, PushResult, Sink, SinkUnavailable
from shipper.sources.base import Source, SourceError

log = logging.getLogger(__name__)

_ENTRY_OVERHEAD_BYTES = 16  # timestamp and framing, as the Loki sink sizes an entry (prepare.py)
# With pushes in flight the GC is paused for the pass; its young generations are collected every
# this many push cycles (a push leaves ~100 objects of cyclic garbage; a collection scans the
# ~10k records in flight, ~1 ms, so once per cycle would cost ~2 % of the pass)
_COLLECT_EVERY_CYCLES = 16
# With pushes in flight, the first pushes of a pass are smaller - 1/8, 1/4, 1/2 of the limits,
# then whole - so that Loki starts on the first while the next is read, instead of waiting for
# a whole one (~70 ms of 2 MiB lines on this VM, bench/real_loki_bench.py)
RAMP_UP_PUSHES = 3
INFLIGHT_SUFFIX = ".inflight"  # checkpoint id of the marker "a pass pushed and did not end cleanly"
UNSETTLED_AT_MOST = "unsettled_records_at_most"  # in the marker: what to check after an unclean stop
_line_of = attrgetter("line")
_ts_of = attrgetter("ts_ns")
_Span = tuple[int, int] | None  # oldest and newest timestamp of a push; None: no records
_PushStep = Callable[[list[LogRecord], Cursor, "PassResult", _Span], None]


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
    stopped: bool = False  # shutting down or no longer the leader: ended early, nothing failed
    skipped: Counter[str] = field(default_factory=Counter)  # records the source did not ship (losses.py)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def outcome(self) -> str:
        """success | partial (finished, but records could not be stored: refused or skipped) |
        failure | stopped."""
        if self.stopped:
            return "stopped"
        if not self.ok:
            return "failure"
        return "partial" if self.rejected_total or sum(self.skipped.values()) else "success"

    @property
    def partial(self) -> bool:
        return self.outcome == "partial"


@runtime_checkable
class ResendChecker(Protocol):
    """A sink that can tell which records its backend already holds (LokiSink)."""

    def drop_present(self, records: list[LogRecord], *, source: str) -> tuple[list[LogRecord], int]:
        """The records not yet held, and how many were held already."""
        ...


class _LeadershipLost(Exception):
    pass


@dataclass(slots=True)
class _Sent:
    """What a step's push did: None when it had no records."""

    pushed: PushResult | None = None
    present: int = 0  # records found already in the backend by a resend check, not sent again


def _batch_bytes(records: list[LogRecord]) -> int:
    """About what the Loki sink counts of `records` toward a push's size: their lines, their
    metadata (sized by the last record's: a source's records share their metadata names, and the
    last has the longest line number) and each entry's framing."""
    if not records:
        return 0
    metadata = records[-1].metadata
    per_entry = _ENTRY_OVERHEAD_BYTES + sum(len(name) + len(str(value)) for name, value in metadata.items())
    return sum(map(len, map(_line_of, records))) + per_entry * len(records)


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
        max_entries: int = loki_defaults.BATCH_MAX_ENTRIES,
        max_bytes: int = loki_defaults.BATCH_MAX_BYTES,
        max_wait_seconds: float = 1.0,
        pushes_in_flight: int = DEFAULT_PUSHES_IN_FLIGHT,
        push_concurrency: int = DEFAULT_PUSH_CONCURRENCY,
        ramp_up_pushes: int = RAMP_UP_PUSHES,
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
        self.pushes_in_flight = pushes_in_flight
        self.push_concurrency = push_concurrency
        self.ramp_up_pushes = ramp_up_pushes
        self._ramp_shift = 0  # the next push's limits are the pipeline's >> this
        self.on_progress = on_progress
        self.still_leading = still_leading or _always
        self._clock = clock
        self._wall_clock = wall_clock
        self._newest_committed_ns: int | None = None  # for the lag gauge across passes
        self._marker_id = self.checkpoint_id + INFLIGHT_SUFFIX
        self._marked_unclean = False  # this pass wrote the unclean marker
        self._checking_resends = False
        self._records_to_check = 0  # of the next pushes, how many records to check at least
        self._lock = threading.Lock()  # the pushes of a pass may run on several threads

    def run_once(self) -> PassResult:
        """One pass. Raises CheckpointError for an unreadable checkpoint (the pass never started);
        a checkpoint that cannot be written, like other failures, is returned as a failed
        PassResult and counted once."""
        result = PassResult(self.source.id)
        cursor = self.checkpointer.load(self.checkpoint_id)
        marker = self.checkpointer.load(self._marker_id)
        self._marked_unclean = marker is not None and marker.get("clean") is False
        self._checking_resends = self._marked_unclean and isinstance(self.sink, ResendChecker)
        if self._checking_resends and marker is not None:
            left_by_marker = marker.get(UNSETTLED_AT_MOST)
            self._records_to_check = max(left_by_marker if type(left_by_marker) is int else 0,
                                         self._unsettled_at_most())
        self._ramp_shift = self.ramp_up_pushes if self.pushes_in_flight >= 1 else 0
        started = self._clock()
        skipped_before = losses.skipped_so_far(self.source.id)
        try:
            self._ship(cursor, result)
            self._mark_clean()
        except _LeadershipLost:  # the marker stays as it is: shared state is the new leader's now
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
        if self.pushes_in_flight < 1:
            while True:
                # One push cycle with the cyclic GC paused: its records are built, pushed and
                # dropped before a collection could scan them (and promote them, which triggers
                # full collections of the whole heap); cyclic garbage made meanwhile is collected
                # after.
                with gc_paused():
                    more = self._fill_and_push(batches, result, self._push_and_commit)
                if not more:
                    return
        self._ship_pipelined(batches, result)

    def _ship_pipelined(self, batches: Iterator[Batch], result: PassResult) -> None:
        """Read and build here, push and commit on the queue's threads (see the module docstring).
        The GC stays paused for the whole pass - every thread allocates all the time, so pausing
        per cycle would leave it on at random moments - and the young generations, where the
        cyclic garbage of a cycle lands, are collected every _COLLECT_EVERY_CYCLES cycles."""
        queue = PushQueue(self.pushes_in_flight, senders=self.push_concurrency, name=f"push-{self.source.id}")
        sink = self.sink if isinstance(self.sink, PreparingSink) else None
        window: list[int] = []  # [oldest, newest] of the pushes that may be unsettled at once

        def hand_over(records: list[LogRecord], cursor: Cursor, result: PassResult, span: _Span) -> None:
            # encoded here, while the pushes before are in flight (not for a resend check's pushes:
            # what they send is decided when they are sent)
            alone = checking = self._checking_resends
            prepared = None
            if sink is not None and records and not checking:
                prepared = sink.prepare_push(records, source=self.source.id)
            if span is not None:  # see MAX_UNCOMMITTED_SPAN_NS
                if window and max(span[1], window[1]) - min(span[0], window[0]) < MAX_UNCOMMITTED_SPAN_NS:
                    window[:] = min(span[0], window[0]), max(span[1], window[1])
                else:
                    window[:] = span
                    alone = True
            settle = partial(self._settle, records, cursor, result)
            queue.submit(partial(self._send, records, prepared), settle, alone=alone)

        collect = gc.isenabled()  # else the caller disabled it and keeps it so
        cycles = 0
        with gc_paused():
            try:
                while self._fill_and_push(batches, result, hand_over):
                    cycles += 1
                    if collect and cycles % _COLLECT_EVERY_CYCLES == 0:
                        gc.collect(1)
                queue.finish()
            except Exception:
                # the batches handed over before a source error still ship; and the pass ends with
                # the error of the earliest step that failed, which may be a push still under way
                # when a later step raised (a lease lost, then the push before it failed)
                queue.finish()
                raise
            except BaseException:  # interrupted: no new push starts, the ones under way are not awaited
                queue.close(wait=False)
                raise

    def _fill_and_push(self, batches: Iterator[Batch], result: PassResult, push: _PushStep) -> bool:
        """Buffer batches until a push is due, push and commit (`push`: at once, or handed to the
        push thread); False once the source is done."""
        buffer: list[LogRecord] = []
        buffered_bytes = 0
        pending: Cursor | None = None
        first_buffered_at = 0.0
        oldest = newest = 0
        for batch in batches:
            if not batch.records and not buffer:
                # a checkpoint alone (e.g. GCS registers new objects before reading them): it
                # must be committed before what follows is pushed, not merged into that push
                push([], batch.cursor, result, None)
                continue
            records = batch.records
            if records:
                low, high = min(map(_ts_of, records)), max(map(_ts_of, records))
                spans = max(high, newest) - min(low, oldest)
                if buffer and pending is not None and spans >= MAX_UNCOMMITTED_SPAN_NS:
                    push(buffer, pending, result, (oldest, newest))  # see MAX_UNCOMMITTED_SPAN_NS
                    buffer, buffered_bytes = [], 0
                oldest, newest = (min(low, oldest), max(high, newest)) if buffer else (low, high)
            if not buffer:
                first_buffered_at = self._clock()
            batch_bytes = _batch_bytes(records)
            buffer += records
            buffered_bytes += batch_bytes
            pending = batch.cursor
            if (
                self._no_room_for_another(len(buffer), buffered_bytes, len(records), batch_bytes)
                or self._clock() - first_buffered_at >= self.max_wait_seconds
            ):
                push(buffer, pending, result, (oldest, newest))
                self._ramp_shift = max(self._ramp_shift - 1, 0)
                return True
        if pending is not None:
            push(buffer, pending, result, (oldest, newest) if buffer else None)
        return False

    def _no_room_for_another(self, entries: int, size: int, batch_entries: int, batch_bytes: int) -> bool:
        """A batch like the last one would take the buffer over a push's limits: pushed now, the
        push stays one request to Loki. Pushed only once over them, it would be sent as a full
        request and a small one (the sink splits at its limits), and Loki spends more a line on
        smaller requests. The first pushes of a pass have smaller limits (RAMP_UP_PUSHES)."""
        shift = self._ramp_shift
        return (entries + max(batch_entries, 1) > self.max_entries >> shift
                or size + max(batch_bytes, 1) > self.max_bytes >> shift)

    def _unsettled_at_most(self) -> int:
        """How many records a pass may push beyond its last commit."""
        return max(self.pushes_in_flight, 1) * self.max_entries

    def _check_leadership(self) -> None:
        if not self.still_leading():
            raise _LeadershipLost

    def _mark_clean(self) -> None:
        if self._marked_unclean:
            self.checkpointer.commit(self._marker_id, {"clean": True})
            self._marked_unclean = False

    def _push_and_commit(self, records: list[LogRecord], cursor: Cursor, result: PassResult,
                         _: _Span) -> None:
        self._settle(records, cursor, result, self._send(records, None))

    def _send(self, records: list[LogRecord], prepared: object) -> _Sent:
        """The push of a step (on a push thread, maybe beside another step's). `prepared`: the
        sink's prepare_push() of `records`, made ahead (PreparingSink)."""
        self._check_leadership()
        if not records:
            return _Sent()
        with self._lock:
            if not self._marked_unclean:  # before the pass's first push, whichever thread sends it
                self.checkpointer.commit(self._marker_id,
                                         {"clean": False, UNSETTLED_AT_MOST: self._unsettled_at_most()})
                self._marked_unclean = True
        sent, present = records, 0
        if self._checking_resends and isinstance(self.sink, ResendChecker):  # such steps go alone
            sent, present = self.sink.drop_present(records, source=self.source.id)
            self._records_to_check -= len(records)
            self._checking_resends = present > 0 or self._records_to_check > 0
            prepared = None  # made for all of `records`
        if prepared is not None and isinstance(self.sink, PreparingSink):
            pushed = self.sink.push_prepared(prepared, source=self.source.id)
        else:
            pushed = self.sink.push(sent, source=self.source.id)
        return _Sent(pushed, present)

    def _settle(self, records: list[LogRecord], cursor: Cursor, result: PassResult, sent: _Sent) -> None:
        """Account a step's push and commit its cursor (steps settle in order, one at a time)."""
        if sent.pushed is not None:
            result.pushes += 1
            result.accepted += sent.present + sent.pushed.accepted
            for rejected in sent.pushed.rejected:
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
        outcome = result.outcome
        metrics.RUNS.labels(source=source, outcome=outcome).inc()
        if outcome in ("success", "partial"):  # partial passes advance too; RUNS tells them apart
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
            log.warning("pass of %s stopped: shutting down, or no longer the leader (%d shipped)", source,
                        result.accepted, extra=fields)
        elif outcome == "partial":
            log.warning("pass of %s partial: %d shipped, %d refused by Loki %s, %d skipped %s", source,
                        result.accepted, result.rejected_total, dict(result.rejected),
                        sum(result.skipped.values()), dict(result.skipped), extra=fields)
        elif result.ok:
            log.info("pass of %s done: %d shipped, %d rejected", source, result.accepted,
                     result.rejected_total, extra=fields)
        else:
            log.error("pass of %s failed, checkpoint kept at the last acknowledged batch: %s", source,
                      result.error, extra={**fields, "error": result.error})
