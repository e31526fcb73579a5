"""Pushes in flight (PUSHES_IN_FLIGHT, PUSH_CONCURRENCY): the next batch is read while pushes are
under way, and the commit rule holds as before - a checkpoint moves only past pushes Loki
answered, in order, whichever push was answered first; after a failed push nothing commits; a stop
(SIGTERM) abandons what is in flight without losing it. Tests of the one-sender order pass
push_concurrency=1; those of two pushes at once, 2 (the default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

from shipper.checkpoint import MemoryCheckpointer
from shipper.models import Batch, Cursor, LogRecord
from shipper.pipeline import INFLIGHT_SUFFIX, UNSETTLED_AT_MOST, PassResult, Pipeline
from shipper.sinks import PushResult, SinkUnavailable
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sinks.loki.transport import stoppable_sleep
from shipper.sources.memory import MemorySource
from tests.loki_mock import LokiMock, Reply

LABELS = {"source": "test", "service_name": "t", "level": "info"}
WAIT = 10.0  # seconds a test waits for the other thread before it fails


def records(count: int) -> list[LogRecord]:
    now = time.time_ns()
    return [LogRecord(now - (count - i) * 1_000_000, f"line {i}", LABELS) for i in range(count)]


class ReadingSource(MemorySource):
    """A MemorySource that tells how many batches were taken from it (read ahead or not)."""

    def __init__(self, source_id: str, items: Sequence[LogRecord], batch_size: int) -> None:
        super().__init__(source_id, items, batch_size)
        self.taken = 0
        self.changed = threading.Condition()

    def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
        for batch in super().pull(cursor):
            with self.changed:
                self.taken += 1
                self.changed.notify_all()
            yield batch

    def wait_taken(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.taken >= count, WAIT)


class Journal:
    """What happened, in order, across the reading and the pushing thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def add(self, what: str, offset: int) -> None:
        with self.lock:
            self.events.append((what, offset))


class JournalledSink:
    """Records each push's start and end (by the offset of its last record); pushes take a
    varying time so that a reordering would show."""

    def __init__(self, journal: Journal, *, fail_on: int = 0) -> None:
        self.journal = journal
        self.fail_on = fail_on
        self.attempts = 0

    def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
        self.attempts += 1
        last = int(items[-1].line.split()[1]) + 1
        self.journal.add("push", last)
        time.sleep(0.002 * (self.attempts % 3))
        if self.attempts == self.fail_on:
            raise SinkUnavailable("scripted outage")
        self.journal.add("acked", last)
        return PushResult(accepted=len(items))


class JournalledCheckpointer(MemoryCheckpointer):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def commit(self, source_id: str, cursor: Cursor) -> None:
        if not source_id.endswith(INFLIGHT_SUFFIX):
            self.journal.add("commit", int(cursor["offset"]))
        super().commit(source_id, cursor)


def test_commits_follow_their_acknowledged_pushes_in_order() -> None:
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    source = ReadingSource("order", records(100), batch_size=10)
    pipeline = Pipeline(source, JournalledSink(journal), checkpoints, max_entries=10, max_wait_seconds=60,
                        pushes_in_flight=3, push_concurrency=1)
    result = pipeline.run_once()
    assert result.ok and result.accepted == 100 and result.commits == 10
    expected = [(what, offset) for offset in range(10, 101, 10) for what in ("push", "acked", "commit")]
    assert journal.events == expected  # never a push before the previous commit, never out of order
    assert checkpoints.load("order") == {"offset": 100}


def test_the_next_batch_is_read_while_a_push_is_in_flight() -> None:
    source = ReadingSource("ahead", records(40), batch_size=10)
    read_ahead: list[bool] = []

    class WaitingSink(JournalledSink):
        def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
            if not read_ahead:  # the first push: the reader fills the queue meanwhile
                read_ahead.append(source_ahead.wait_taken(3))
            return super().push(items, source=source)

    source_ahead = source
    result = Pipeline(source, WaitingSink(Journal()), MemoryCheckpointer(), max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=2).run_once()
    assert result.ok and result.accepted == 40
    assert read_ahead == [True]  # batches 2 and 3 were read before push 1 was answered


def test_a_failed_push_in_flight_commits_nothing_after_it_and_the_next_pass_resends_from_there() -> None:
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    source = ReadingSource("fail", records(60), batch_size=10)
    read_before_failure: list[int] = []

    class FailingSink(JournalledSink):
        def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
            if self.attempts == 1:  # push 2: fails once batches 3 and 4 were read behind it
                assert ahead.wait_taken(4)
                read_before_failure.append(ahead.taken)
            return super().push(items, source=source)

    ahead = source
    result = Pipeline(source, FailingSink(journal, fail_on=2), checkpoints, max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=2, push_concurrency=1).run_once()
    assert not result.ok and "scripted outage" in (result.error or "")
    assert read_before_failure and read_before_failure[0] >= 4
    assert checkpoints.load("fail") == {"offset": 10}
    assert journal.events == [("push", 10), ("acked", 10), ("commit", 10), ("push", 20)]
    assert result.commits == 1 and result.accepted == 10

    journal.events.clear()
    again = Pipeline(ReadingSource("fail", records(60), batch_size=10), JournalledSink(journal), checkpoints,
                     max_entries=10, max_wait_seconds=60, pushes_in_flight=2).run_once()
    assert again.ok and again.accepted == 50
    assert sorted(offset for what, offset in journal.events if what == "push") == [20, 30, 40, 50, 60]
    assert checkpoints.load("fail") == {"offset": 60}


def test_a_push_refused_while_the_next_is_queued_ships_everything_exactly_once_on_the_next_pass() -> None:
    """Through the real sink: Loki answers 500 to push 2 (no retry budget) while push 3 waits."""
    mock = LokiMock()
    items = records(60)
    source = ReadingSource("refused", items, batch_size=10)

    def handler(request: httpx.Request) -> httpx.Response:
        if mock.push_attempts == 1:
            assert source.wait_taken(4)  # push 3 is queued, batch 4 read
            mock.script(Reply(500, body="ingester unavailable"))
        return mock.handler(request)

    config = LokiSinkConfig(url="http://loki.test", retry_max_total_seconds=0)
    checkpoints = MemoryCheckpointer()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = Pipeline(source, LokiSink(config, client), checkpoints, max_entries=10, max_wait_seconds=60,
                          pushes_in_flight=2, push_concurrency=1).run_once()
        assert not result.ok and "500" in (result.error or "")
        assert checkpoints.load("refused") == {"offset": 10}
        assert mock.push_attempts == 2  # push 3 never went out
        assert len(mock.distinct()) == 10
        again = Pipeline(MemorySource("refused", items, batch_size=10), LokiSink(config, client), checkpoints,
                         max_entries=10, max_wait_seconds=60, pushes_in_flight=2).run_once()
    assert again.ok and again.accepted == 50
    mock.assert_clean()
    stored = sorted(line for _, _, line in mock.distinct())
    assert stored == sorted(record.line for record in items)
    assert sum(push.entry_count for push in mock.requests) == 70  # 60 + push 2 sent twice


def test_a_stop_while_pushes_are_in_flight_abandons_them_and_the_next_start_sends_them() -> None:
    """What SIGTERM does in `shipper run` (stop event -> stoppable_sleep): push 2 is retrying a
    503 with push 3 queued behind it; the stop ends the pass at once, push 3 never goes out, the
    checkpoint stays after push 1, and the next pass ships the rest exactly once."""
    mock = LokiMock()
    items = records(50)
    source = ReadingSource("stop", items, batch_size=10)
    mock_scripted = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if mock.push_attempts == 1 and not mock_scripted.is_set():
            mock.script(Reply(503, body="unavailable"))  # its retry waits 15-30 s: stopped before
            mock_scripted.set()
        return mock.handler(request)

    stop = threading.Event()
    config = LokiSinkConfig(url="http://loki.test", retry_min_backoff_seconds=30,
                            retry_max_backoff_seconds=30)
    checkpoints = MemoryCheckpointer()
    outcome: list[PassResult] = []
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        sink = LokiSink(config, client, sleep=stoppable_sleep(stop))
        pipeline = Pipeline(source, sink, checkpoints, max_entries=10, max_wait_seconds=60,
                            pushes_in_flight=2, push_concurrency=1)
        passing = threading.Thread(target=lambda: outcome.append(pipeline.run_once()))
        passing.start()
        assert mock_scripted.wait(WAIT) and source.wait_taken(4)  # push 2 retrying, push 3 queued
        stopped_at = time.monotonic()
        stop.set()
        passing.join(WAIT)
        assert not passing.is_alive() and time.monotonic() - stopped_at < 5
        result = outcome[0]
        assert not result.ok and "stopping" in (result.error or "")
        assert mock.push_attempts == 2  # push 3 was never sent
        assert checkpoints.load("stop") == {"offset": 10}
        assert mock.pending_script == 0  # Loki is back
        again = Pipeline(MemorySource("stop", items, batch_size=10), LokiSink(config, client), checkpoints,
                         max_entries=10, max_wait_seconds=60, pushes_in_flight=2).run_once()
    assert again.ok and again.accepted == 40
    mock.assert_clean()
    assert sorted(line for _, _, line in mock.distinct()) == sorted(record.line for record in items)


@pytest.mark.parametrize("in_flight", [0, 1, 3])
def test_every_setting_ships_the_same(in_flight: int) -> None:
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    source = ReadingSource("same", records(35), batch_size=4)
    result = Pipeline(source, JournalledSink(journal), checkpoints, max_entries=10, max_wait_seconds=60,
                      pushes_in_flight=in_flight, ramp_up_pushes=0).run_once()
    assert result.ok and result.accepted == 35 and checkpoints.load("same") == {"offset": 35}
    assert [offset for what, offset in journal.events if what == "commit"] == [8, 16, 24, 32, 35]


@pytest.mark.parametrize(("in_flight", "commits"), [(2, [10, 30, 70, 100]), (0, [80, 100])])
def test_with_pushes_in_flight_the_first_pushes_of_a_pass_are_an_eighth_a_quarter_a_half(
    in_flight: int, commits: list[int]
) -> None:
    """So that Loki starts on a small first push while the next is read; one push at a time gains
    nothing from that, and pushes whole at once."""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    for _ in range(2):  # every pass ramps up again
        checkpoints.cursors.clear()
        journal.events.clear()
        source = ReadingSource("ramp", records(100), batch_size=1)
        result = Pipeline(source, JournalledSink(journal), checkpoints, max_entries=80, max_wait_seconds=60,
                          pushes_in_flight=in_flight).run_once()
        assert result.ok and result.accepted == 100
        assert [offset for what, offset in journal.events if what == "commit"] == commits


def test_a_source_error_after_batches_were_handed_over_still_ships_and_commits_them() -> None:
    from shipper.sources.base import SourceError

    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)

    class BreakingSource(ReadingSource):
        def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
            yield from super().pull(cursor)
            raise SourceError("bucket is gone")

    result = Pipeline(BreakingSource("broken", records(30), batch_size=10), JournalledSink(journal),
                      checkpoints, max_entries=10, max_wait_seconds=60, pushes_in_flight=2).run_once()
    assert not result.ok and "bucket is gone" in (result.error or "")
    assert checkpoints.load("broken") == {"offset": 30}
    assert [offset for what, offset in journal.events if what == "commit"] == [10, 20, 30]


def test_an_interrupted_pass_does_not_wait_for_the_push_under_way_and_starts_no_other() -> None:
    """Ctrl-C in `shipper once` (KeyboardInterrupt while reading): it propagates at once; the
    push under way may still finish and commit (it was acknowledged), the queued one never runs.
    One sender, so that which push is under way and which queued does not depend on timing."""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    release = threading.Event()

    class Interrupted(ReadingSource):
        def pull(self, cursor: Cursor | None) -> Iterator[Batch]:
            for number, batch in enumerate(super().pull(cursor), start=1):
                if number == 3:
                    raise KeyboardInterrupt
                yield batch

    class BlockingSink(JournalledSink):
        def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
            assert release.wait(WAIT)
            return super().push(items, source=source)

    pipeline = Pipeline(Interrupted("ctrl-c", records(50), batch_size=10), BlockingSink(journal), checkpoints,
                        max_entries=10, max_wait_seconds=60, pushes_in_flight=2, push_concurrency=1)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_once()
    assert not release.is_set() and journal.events == []  # push 1 still under way: not waited for
    release.set()
    deadline = time.monotonic() + WAIT
    while checkpoints.load("ctrl-c") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # room for a (wrong) second push to show
    assert journal.events == [("push", 10), ("acked", 10), ("commit", 10)]


class OverlapSink(JournalledSink):
    """Push 2 (offset 20) is answered only once push 3 (offset 30) was sent, if it is within
    `wait` seconds: with two senders, push 3 goes out beside push 2 and is answered first."""

    def __init__(self, journal: Journal, *, wait: float = WAIT, fail_second: bool = False) -> None:
        super().__init__(journal)
        self.third_sent = threading.Event()
        self.second_answered = threading.Event()
        self.third_answered = threading.Event()
        self.wait = wait
        self.fail_second = fail_second
        self.overlapped: list[bool] = []

    def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
        last = int(items[-1].line.split()[1]) + 1
        self.journal.add("push", last)
        if last == 30:
            self.third_sent.set()
        if last == 20:
            self.overlapped.append(self.third_sent.wait(self.wait))
            if self.fail_second:
                self.third_answered.wait(WAIT)
                raise SinkUnavailable("scripted outage")
        self.journal.add("acked", last)
        if last == 20:
            self.second_answered.set()
        if last == 30:
            self.third_answered.set()
        return PushResult(accepted=len(items))


def test_two_pushes_go_out_at_once_and_commit_in_the_order_they_were_read() -> None:
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    sink = OverlapSink(journal)
    result = Pipeline(ReadingSource("two", records(60), batch_size=10), sink, checkpoints, max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=3, push_concurrency=2).run_once()
    assert result.ok and result.accepted == 60 and result.commits == 6
    events = journal.events
    assert sink.overlapped == [True]
    assert events.index(("acked", 30)) < events.index(("acked", 20))  # answered out of order ...
    commits = [offset for what, offset in events if what == "commit"]
    assert commits == [10, 20, 30, 40, 50, 60]  # ... committed in order,
    for offset in commits:  # each after its own answer and every answer before it
        answered_before = {o for what, o in events[:events.index(("commit", offset))] if what == "acked"}
        assert set(range(10, offset + 1, 10)) <= answered_before
    assert checkpoints.load("two") == {"offset": 60}
    assert checkpoints.load("two" + INFLIGHT_SUFFIX) == {"clean": True}


def test_a_push_failing_beside_an_answered_one_commits_neither_and_the_next_pass_resends_both() -> None:
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    sink = OverlapSink(journal, fail_second=True)
    result = Pipeline(ReadingSource("fail2", records(60), batch_size=10), sink, checkpoints, max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=3, push_concurrency=2).run_once()
    assert not result.ok and "scripted outage" in (result.error or "")
    assert ("acked", 30) in journal.events  # Loki took push 3 ...
    assert checkpoints.load("fail2") == {"offset": 10}  # ... but only push 1 is committed
    assert result.commits == 1 and result.accepted == 10
    assert checkpoints.load("fail2" + INFLIGHT_SUFFIX) == {  # the next pass checks resends
        "clean": False, UNSETTLED_AT_MOST: 30}

    journal.events.clear()
    again = Pipeline(ReadingSource("fail2", records(60), batch_size=10), JournalledSink(journal), checkpoints,
                     max_entries=10, max_wait_seconds=60, pushes_in_flight=3, push_concurrency=2).run_once()
    assert again.ok and again.accepted == 50
    assert sorted(offset for what, offset in journal.events if what == "push") == [20, 30, 40, 50, 60]
    assert checkpoints.load("fail2") == {"offset": 60}


@pytest.mark.parametrize(("spacing_minutes", "overlaps"), [(1, True), (3, False)])
def test_pushes_that_together_span_50_minutes_or_more_are_not_unsettled_at_once(
    spacing_minutes: int, overlaps: bool
) -> None:
    """Records 3 minutes apart: a push of 10 spans 27 minutes, two span 57 (MAX_UNCOMMITTED_SPAN_NS
    is 50), so push 3 is sent only once push 2 settled; 1 minute apart, it goes out beside it."""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    start = time.time_ns() - 5 * 3600 * 1_000_000_000
    step_ns = spacing_minutes * 60 * 1_000_000_000
    items = [LogRecord(start + i * step_ns, f"line {i}", LABELS) for i in range(30)]
    sink = OverlapSink(journal, wait=WAIT if overlaps else 0.3)
    result = Pipeline(ReadingSource("span", items, batch_size=10), sink, checkpoints, max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=3, push_concurrency=2).run_once()
    assert result.ok and result.accepted == 30
    assert sink.overlapped == [overlaps]
    events = journal.events
    assert (events.index(("commit", 20)) < events.index(("push", 30))) is not overlaps


def test_leadership_lost_while_two_pushes_are_answered_leaves_the_pass_unclean() -> None:
    """Push 3 was answered beside push 2, and the lease lapsed once both were: neither is
    committed, and the next leader must ask Loki what it holds before resending them."""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    sink = OverlapSink(journal)

    def still_leading() -> bool:
        return not (sink.second_answered.is_set() and sink.third_answered.is_set())

    result = Pipeline(ReadingSource("lease", records(60), batch_size=10), sink, checkpoints, max_entries=10,
                      max_wait_seconds=60, pushes_in_flight=3, push_concurrency=2,
                      still_leading=still_leading).run_once()
    assert result.stopped and sink.overlapped == [True]
    assert ("acked", 20) in journal.events and ("acked", 30) in journal.events
    assert checkpoints.load("lease") == {"offset": 10}
    assert checkpoints.load("lease" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 30}


def test_a_lease_lost_beside_a_push_that_then_fails_ends_the_pass_failed_and_unclean() -> None:
    """Push 2 is retrying when the lease lapses: push 3's send finds it lost, and push 2 then gives
    up on an answer that never came (Loki may hold it). The pass ends with push 2's error, the
    earliest, and the marker stays unclean, so the next leader checks before resending it."""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    second_started, lease_lost = threading.Event(), threading.Event()

    class TimingOutSink(JournalledSink):
        def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
            last = int(items[-1].line.split()[1]) + 1
            if last == 10:  # answered once push 2 is under way beside it
                assert second_started.wait(WAIT)
            if last == 20:
                second_started.set()
                assert lease_lost.wait(WAIT)
                time.sleep(0.05)  # the pass has seen the lease lost and is waiting for this push
                raise SinkUnavailable("timed out: Loki may hold the push")
            return super().push(items, source=source)

    def still_leading() -> bool:
        if second_started.is_set() and ("commit", 10) in journal.events:
            lease_lost.set()
            return False
        return True

    result = Pipeline(ReadingSource("lapse", records(60), batch_size=10), TimingOutSink(journal), checkpoints,
                      max_entries=10, max_wait_seconds=60, pushes_in_flight=2, push_concurrency=2,
                      ramp_up_pushes=0, still_leading=still_leading).run_once()
    assert result.outcome == "failure" and "Loki may hold the push" in (result.error or "")
    assert checkpoints.load("lapse") == {"offset": 10}
    assert checkpoints.load("lapse" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 20}


def test_a_push_under_way_when_the_lease_is_lost_leaves_the_pass_unclean_whatever_its_answer() -> None:
    """Push 2 went out beside push 1, then push 1's send finds the lease lost; push 2's answer
    never comes (a timeout: Loki may hold it). Nothing is committed, the pass stops, and the marker
    stays unclean so that the next leader checks before resending push 2. (Should the senders take
    their steps the other way round, push 1's timeout ends the pass failed: unclean as well.)"""
    journal = Journal()
    checkpoints = JournalledCheckpointer(journal)
    pushing, lease_lost = threading.Event(), threading.Event()
    calls = iter(range(1_000))

    class TimingOutSink(JournalledSink):
        def push(self, items: Sequence[LogRecord], *, source: str) -> PushResult:
            pushing.set()
            assert lease_lost.wait(WAIT)
            time.sleep(0.05)  # the pass has seen the lease lost and is waiting for this push
            raise SinkUnavailable("timed out: Loki may hold the push")

    def still_leading() -> bool:
        if next(calls) == 0:  # the first push's check, answered once the second push is under way
            assert pushing.wait(WAIT)
            lease_lost.set()
            return False
        return True

    result = Pipeline(ReadingSource("under-way", records(40), batch_size=10), TimingOutSink(journal),
                      checkpoints, max_entries=10, max_wait_seconds=60, pushes_in_flight=2,
                      push_concurrency=2, ramp_up_pushes=0, still_leading=still_leading).run_once()
    assert result.outcome in ("stopped", "failure") and result.commits == 0
    assert checkpoints.load("under-way") is None
    assert checkpoints.load("under-way" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 20}
