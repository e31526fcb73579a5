"""Pipeline: pushes between commits span less than Loki's 1 h window; the unclean-stop marker
decides whether the first pushes ask the sink what Loki already holds; the pass outcome. One push
at a time (`sequential`), so that the sinks' scripted answers follow the order of the pushes."""

from __future__ import annotations

import pytest

from shipper import metrics
from shipper.checkpoint import MemoryCheckpointer
from shipper.models import MAX_UNCOMMITTED_SPAN_NS, LogRecord
from shipper.pipeline import INFLIGHT_SUFFIX, UNSETTLED_AT_MOST
from shipper.sources.memory import MemorySource
from tests.shipper.test_pipeline import LABELS, RecordingSink, sequential

MINUTE = 60 * 1_000_000_000
T0 = 1_700_000_000_000_000_000


def spread(count: int, step_ns: int) -> list[LogRecord]:
    return [LogRecord(T0 + i * step_ns, f"line {i}", LABELS) for i in range(count)]


def test_pushes_between_commits_span_less_than_lokis_window() -> None:
    sink = RecordingSink()
    checkpoints = MemoryCheckpointer()
    source = MemorySource("span", spread(30, 10 * MINUTE), batch_size=1)  # 5 h, one record a batch
    result = sequential(source, sink, checkpoints, max_wait_seconds=3600).run_once()
    assert result.ok and result.accepted == 30
    spans = [max(r.ts_ns for r in push) - min(r.ts_ns for r in push) for push in sink.pushes]
    assert len(sink.pushes) == 6 and max(spans) < MAX_UNCOMMITTED_SPAN_NS
    assert result.commits == len(sink.pushes)  # a commit after each push


class CheckingSink(RecordingSink):
    """Says the first `held` records of what it is asked about are in Loki already."""

    def __init__(self, held: int = 0, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.held = held
        self.asked: list[int] = []

    def drop_present(self, records: list[LogRecord], *, source: str) -> tuple[list[LogRecord], int]:
        self.asked.append(len(records))
        held = min(self.held, len(records))
        self.held -= held
        return records[held:], held


def test_after_an_unclean_stop_the_first_pushes_drop_what_loki_holds() -> None:
    checkpoints = MemoryCheckpointer()
    source = MemorySource("unclean", spread(30, 1), batch_size=10)
    failing = CheckingSink(fail_on=[2])
    first = sequential(source, failing, checkpoints, max_entries=10).run_once()
    assert not first.ok and failing.asked == []  # nothing to check on a clean start
    # two pushes in flight (the default) of 10 at most: 20 records beyond the commit may be in Loki
    assert checkpoints.load("unclean" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 20}

    sink = CheckingSink(held=13)  # the failed push (10) reached Loki, and 3 of the next
    second = sequential(source, sink, checkpoints, max_entries=10).run_once()
    assert second.outcome == "success" and second.accepted == 20
    assert sink.asked == [10, 10]
    assert sum(len(push) for push in sink.pushes) == 20 - 13

    sink = CheckingSink(held=0)
    checkpoints.commit("unclean" + INFLIGHT_SUFFIX, {"clean": False, UNSETTLED_AT_MOST: 20})
    checkpoints.commit("unclean", {"offset": 0})
    sequential(source, sink, checkpoints, max_entries=10).run_once()
    # the first push found nothing held, but a push beside a failed one may be in Loki: the
    # questions go on over the 20 records the marker names, and stop at the first push past them
    assert sink.asked == [10, 10]
    assert checkpoints.load("unclean" + INFLIGHT_SUFFIX) == {"clean": True}

    again = CheckingSink()
    sequential(MemorySource("unclean", spread(40, 1), batch_size=10), again, checkpoints).run_once()
    assert again.asked == []  # the previous pass ended cleanly


@pytest.mark.parametrize(("marker", "pushes_in_flight", "asked"), [
    ({"clean": False, UNSETTLED_AT_MOST: 30}, 2, [10, 10, 10]),  # the marker's 30 over this pass's 20
    ({"clean": False, UNSETTLED_AT_MOST: 10}, 2, [10, 10]),  # this pass's 20 over the marker's 10
    ({"clean": False}, 0, [10]),  # a marker without the figure; one push at a time: 10
    ({"clean": False, UNSETTLED_AT_MOST: "many"}, 3, [10, 10, 10]),  # not a number: this pass's 30
])
def test_the_resend_checks_cover_what_either_pass_may_have_left_unsettled(
    marker: dict[str, object], pushes_in_flight: int, asked: list[int]
) -> None:
    """The settings may have changed between the unclean stop and this pass: the checks cover
    the larger of the marker's figure and this pass's own, then stop at the first push that finds
    nothing held."""
    checkpoints = MemoryCheckpointer()
    checkpoints.commit("cover" + INFLIGHT_SUFFIX, marker)
    sink = CheckingSink(held=0)
    result = sequential(MemorySource("cover", spread(50, 1), batch_size=10), sink, checkpoints,
                        max_entries=10, pushes_in_flight=pushes_in_flight).run_once()
    assert result.ok and result.accepted == 50
    assert sink.asked == asked
    assert sum(len(push) for push in sink.pushes) == 50


def test_a_pass_with_rejected_records_is_partial_and_counted() -> None:
    before = metrics.REGISTRY.get_sample_value(
        "shipper_runs_total", {"source": "partial-src", "outcome": "partial"}) or 0
    sink = RecordingSink(reject_lines=["line 3"])
    result = sequential(MemorySource("partial-src", spread(5, 1)), sink, MemoryCheckpointer()).run_once()
    assert result.ok and result.outcome == "partial" and dict(result.rejected) == {"too_far_behind": 1}
    assert metrics.REGISTRY.get_sample_value(
        "shipper_runs_total", {"source": "partial-src", "outcome": "partial"}) == before + 1


def test_sinks_without_the_check_still_work() -> None:
    checkpoints = MemoryCheckpointer()
    checkpoints.commit("plain" + INFLIGHT_SUFFIX, {"clean": False})
    sink = RecordingSink()
    assert sequential(MemorySource("plain", spread(3, 1)), sink, checkpoints).run_once().accepted == 3
    assert checkpoints.load("plain" + INFLIGHT_SUFFIX) == {"clean": True}


def test_leadership_lost_between_a_push_and_its_commit_leaves_the_pass_unclean() -> None:
    """The next leader resends from the last commit: it must first ask what Loki holds."""
    checkpoints = MemoryCheckpointer()
    answers = iter([True, True, True, False])  # push 1 + commit 1, push 2, lost before commit 2
    lost = sequential(MemorySource("handover", spread(30, 1), batch_size=10), RecordingSink(), checkpoints,
                    max_entries=10, still_leading=lambda: next(answers)).run_once()
    assert lost.stopped and checkpoints.load("handover") == {"offset": 10}
    assert checkpoints.load("handover" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 20}

    sink = CheckingSink(held=10)  # the second push reached Loki
    resumed = sequential(MemorySource("handover", spread(30, 1), batch_size=10), sink, checkpoints,
                       max_entries=10).run_once()
    assert resumed.ok and resumed.accepted == 20 and sink.asked[0] == 10
    assert sum(len(push) for push in sink.pushes) == 10  # only the third batch is new


def test_a_replica_that_lost_its_lease_leaves_the_marker_to_the_next_leader() -> None:
    """Stopped even at a commit boundary, the deposed replica writes nothing more: marking the
    shared marker clean could overwrite the new leader's unclean mark, and the resend checks
    after the new leader's own unclean stop would be skipped."""
    checkpoints = MemoryCheckpointer()
    answers = iter([True, True, False])  # push 1 + commit 1, then lost before push 2
    sequential(MemorySource("boundary", spread(30, 1), batch_size=10), RecordingSink(), checkpoints,
               max_entries=10, still_leading=lambda: next(answers)).run_once()
    assert checkpoints.load("boundary") == {"offset": 10}
    assert checkpoints.load("boundary" + INFLIGHT_SUFFIX) == {"clean": False, UNSETTLED_AT_MOST: 20}
