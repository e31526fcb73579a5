"""PodSource against tests/kube_api_stub.py, a local HTTP server answering like the Kubernetes API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s

from shipper.checkpoint import FileCheckpointer
from shipper.config import PodsSourceConfig
from shipper.metrics import REGISTRY
from shipper.models import Batch
from shipper.sources.base import SourceError
from shipper.sources.pods import PodLimits, PodSource, since_time
from shipper.sources.pods.limits import DEFAULT_LIMITS, REORDER_SLACK_SECONDS
from shipper.sources.pods.position import TimestampCounts
from tests import kube_api_stub
from tests.conftest import free_port
from tests.kube_api_stub import KubeApi, rfc3339_nano
from tests.shipper.sources.shipping import records_of, ship

kube_api = kube_api_stub.kube_api

T0 = 1_772_366_400 * 10**9  # 2026-03-01T12:00:00Z
SECOND = 10**9


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def make_source(
    kube: KubeApi, source_id: str, clock: Callable[[], int] | None = None, *,
    limits: PodLimits = DEFAULT_LIMITS, **extra: object,
) -> PodSource:
    config = PodsSourceConfig(id=source_id, **extra)
    source = PodSource.from_config(config, api_client=kube.api_client(), limits=limits)
    if clock is not None:
        source.clock = clock
    return source


def lines_of(batches: list[Batch]) -> list[str]:
    return [record.line for batch in batches for record in batch.records]


def skipped(source_id: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "shipper_records_skipped_total", {"source": source_id, "reason": reason}
    ) or 0.0


def test_running_pods_are_read_with_timestamps_and_labelled(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("api-7d9", ["api", "sidecar"], labels={"app.kubernetes.io/name": "trader", "tier": "be"},
                 node="node-a")
    stub.add_pod("legacy-1", ["worker"], labels={"app": "legacy", "tier": "be"})
    stub.add_pod("other-1", ["x"], labels={"tier": "fe"})
    stub.add_pod("pending-1", ["y"], labels={"tier": "be"}, phase="Pending")
    stub.write("api-7d9", "api", T0 + 123_456_789, '{"level": "error", "msg": "boom"}')
    stub.write("api-7d9", "sidecar", T0 + 1, "WARN proxy slow")
    stub.write("legacy-1", "worker", T0 + 2, "plain text")
    stub.write("other-1", "x", T0, "not selected")
    source = make_source(kube_api, "pods-basic", label_selector="tier=be")

    records = records_of(ship(source, FileCheckpointer(tmp_path)))

    assert [(r.labels, r.metadata, r.ts_ns, r.line) for r in records] == [
        ({"source": "pod", "service_name": "trader", "namespace": "gpt", "pod": "api-7d9", "container": "api",
          "level": "error"}, {"node": "node-a", "restart_count": "0"}, T0 + 123_456_789,
         '{"level": "error", "msg": "boom"}'),
        ({"source": "pod", "service_name": "trader", "namespace": "gpt", "pod": "api-7d9",
          "container": "sidecar", "level": "warn"}, {"node": "node-a", "restart_count": "0"}, T0 + 1,
         "WARN proxy slow"),
        ({"source": "pod", "service_name": "legacy", "namespace": "gpt", "pod": "legacy-1",
          "container": "worker", "level": "unknown"}, {"node": "node-1", "restart_count": "0"}, T0 + 2,
         "plain text"),
    ]
    requests = stub.log_requests()
    assert requests[0].query == {"container": "api", "timestamps": "true", "follow": "false"}
    assert all("sinceTime" not in r.query for r in requests)
    assert source.check() == "namespace gpt: 2 running pods, 3 containers"


def test_restart_from_checkpoint_ships_each_line_once_despite_second_precision(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    for index, offset in enumerate([0, 10, 10, 10, 500_000_000]):  # three lines share one nanosecond
        stub.write("api-1", "api", T0 + offset, f"line {index}")
    source = make_source(kube_api, "pods-e2e", limits=PodLimits(log_batch_lines=2))
    checkpoints = FileCheckpointer(tmp_path)

    first = ship(source, checkpoints, stop_after=1)  # crash after 2 lines: "line 0", "line 1"
    assert lines_of(first) == ["line 0", "line 1"]
    assert checkpoints.load("pods-e2e")["containers"]["api-1/api"]["at_ts"] == 1
    second = ship(source, checkpoints)
    assert lines_of(second) == ["line 2", "line 3", "line 4"]
    # the read starts the reorder slack before the second of the last shipped line
    slack = REORDER_SLACK_SECONDS * SECOND
    assert stub.log_requests()[-1].query["sinceTime"] == since_time(T0 - slack) == "2026-03-01T11:59:58Z"

    # more lines in the same second, one at exactly the last shipped nanosecond
    stub.write("api-1", "api", T0 + 500_000_000, "line 5")
    stub.write("api-1", "api", T0 + 700_000_000, "line 6")
    third = ship(source, checkpoints)
    assert lines_of(third) == ["line 5", "line 6"]
    assert lines_of(ship(source, checkpoints)) == []
    every_line = lines_of(first + second + third)
    assert every_line == [f"line {index}" for index in range(7)]


def test_an_older_line_in_a_read_never_moves_the_position_back(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    for offset, text in [(5, "stdout a"), (3, "stderr b"), (5, "stdout c")]:
        stub.write("api-1", "api", T0 + offset, text)
    source = make_source(kube_api, "pods-order")
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["stdout a", "stderr b", "stdout c"]
    assert checkpoints.load("pods-order")["containers"]["api-1/api"] | {"uid": ""} == {
        "uid": "", "restart_count": 0, "ts_ns": T0 + 5, "at_ts": 2, "mark_ts": T0 + 5, "mark_n": 2,
    }
    stub.write("api-1", "api", T0 + 6, "next")
    assert lines_of(ship(source, checkpoints)) == ["next"]


def test_a_later_line_with_an_older_timestamp_is_shipped_after_a_pass(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    """stderr's line is timestamped before stdout's yet written after the pass that shipped
    stdout's: it follows the mark in the log, so it is new, whatever its timestamp."""
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    stub.write("api-1", "api", T0 + 5 * SECOND, "stdout a")
    source = make_source(kube_api, "pods-late-older")
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["stdout a"]
    stub.write("api-1", "api", T0 + 5 * SECOND - 700_000_000, "stderr b")  # 0.7 s older, another second
    stub.write("api-1", "api", T0 + 5 * SECOND, "stdout c")  # same nanosecond as the mark
    stub.write("api-1", "api", T0 + 6 * SECOND, "stdout d")
    assert lines_of(ship(source, checkpoints)) == ["stderr b", "stdout c", "stdout d"]
    assert lines_of(ship(source, checkpoints)) == []


def test_a_crash_between_batches_loses_no_older_line_that_follows(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    interleaved = [(10, "out 0"), (10, "out 1"), (9, "err 2"), (11, "out 3"), (8, "err 4"), (12, "out 5")]
    for tenth, text in interleaved:
        stub.write("api-1", "api", T0 + tenth * SECOND // 10, text)
    source = make_source(kube_api, "pods-crash-order", limits=PodLimits(log_batch_lines=2))
    checkpoints = FileCheckpointer(tmp_path)
    first = ship(source, checkpoints, stop_after=1)  # committed: "out 0", "out 1"
    second = ship(source, checkpoints, stop_after=1)  # committed: "err 2", "out 3"
    rest = ship(source, checkpoints)
    assert [lines_of(first), lines_of(second), lines_of(rest)] == [
        ["out 0", "out 1"], ["err 2", "out 3"], ["err 4", "out 5"],
    ]


def test_without_its_marked_line_a_read_ships_what_is_newer_once(kube_api: KubeApi, tmp_path: Path) -> None:
    """The marked line rotated out of the log: lines up to the newest shipped timestamp count as
    shipped, the first newer one starts the shipping (an older one after it is new as well)."""
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    for tenth, text in [(1, "a"), (2, "b"), (3, "c")]:
        stub.write("api-1", "api", T0 + tenth * SECOND // 10, text)
    source = make_source(kube_api, "pods-rotated")
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["a", "b", "c"]
    for tenth, text in [(4, "d"), (2, "e older, after d"), (5, "f")]:
        stub.write("api-1", "api", T0 + tenth * SECOND // 10, text)
    with stub.lock:
        container = stub.pods[("gpt", "api-1")].containers["api"]
        container.current = container.current[3:]  # a, b, c rotated away
    assert lines_of(ship(source, checkpoints)) == ["d", "e older, after d", "f"]
    assert lines_of(ship(source, checkpoints)) == []


MS = 10**6


def test_a_shipped_line_without_a_count_leaves_the_mark_on_the_last_line_with_one(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    """e's timestamp was forgotten (too many distinct ones, far below the newest): d stays the
    mark, and f, which follows e and is newer than it, is shipped next read."""
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    for ms, text in [(10_000, "a"), (10_100, "b"), (10_200, "c"), (13_000, "d"), (10_150, "e")]:
        stub.write("api-1", "api", T0 + ms * MS, text)
    source = make_source(kube_api, "pods-uncounted", limits=PodLimits(tracked_timestamps=3))
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["a", "b", "c", "d", "e"]
    position = checkpoints.load("pods-uncounted")["containers"]["api-1/api"]
    assert (position["mark_ts"], position["mark_n"]) == (T0 + 13_000 * MS, 1)
    stub.write("api-1", "api", T0 + 12_000 * MS, "f")
    assert lines_of(ship(source, checkpoints)) == ["f"]


def test_the_mark_is_found_however_many_timestamps_come_before_it(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    """The read after starts 2 s before the mark and sees more timestamps than the one that set
    it; finding the mark counts only the lines with its timestamp, so nothing forgotten hides it."""
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    for ms, text in [(16_000, "a"), (19_000, "z")]:
        stub.write("api-1", "api", T0 + ms * MS, text)
    source = make_source(kube_api, "pods-mark-found", limits=PodLimits(tracked_timestamps=3))
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["a", "z"]
    for ms, text in [(17_600, "b"), (20_000, "p"), (17_500, "m")]:
        stub.write("api-1", "api", T0 + ms * MS, text)
    assert lines_of(ship(source, checkpoints)) == ["b", "p", "m"]
    position = checkpoints.load("pods-mark-found")["containers"]["api-1/api"]
    assert (position["mark_ts"], position["mark_n"]) == (T0 + 17_500 * MS, 1)
    stub.write("api-1", "api", T0 + 18_500 * MS, "q")  # after m, older than the newest shipped
    assert lines_of(ship(source, checkpoints)) == ["q"]


def test_timestamp_counts_forget_beyond_the_slack_and_say_so() -> None:
    counts = TimestampCounts(PodLimits(tracked_timestamps=2))
    assert [counts.add(T0), counts.add(T0), counts.add(T0 + 1)] == [1, 2, 1]
    assert counts.add(T0 + 3 * SECOND) == 1  # a third timestamp: T0 and T0 + 1 are forgotten
    assert counts.add(T0 + 1) is None  # its count would be wrong: no count, so never a mark
    assert counts.add(T0 + 2 * SECOND) == 1  # within the slack of the newest: still counted


def test_timestamp_counts_clean_up_only_when_the_table_has_doubled() -> None:
    """A busy second (more timestamps within the slack than TRACKED_TIMESTAMPS) must not make
    every line scan the table: after a cleanup that frees nothing, the next waits for twice as many."""
    counts = TimestampCounts(PodLimits(tracked_timestamps=4))
    thresholds = []
    for i in range(64):  # all within one millisecond: nothing can be forgotten
        assert counts.add(T0 + i) == 1
        thresholds.append(counts._cleanup_at)
    assert sorted(set(thresholds)) == [4, 10, 22, 46, 94]  # cleanups after 5, 11, 23, 47 lines only



def test_container_restart_ships_the_previous_instance_rest_first(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    stub.write("api-1", "api", T0, "old 1")
    source = make_source(kube_api, "pods-restart")
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["old 1"]

    stub.write("api-1", "api", T0 + SECOND, "old 2 (written just before the crash)")
    stub.restart("api-1", "api")
    stub.write("api-1", "api", T0 + 5 * SECOND, "new 1")

    records = records_of(ship(source, checkpoints))
    assert [(r.line, r.metadata["restart_count"]) for r in records] == [
        ("old 2 (written just before the crash)", "0"), ("new 1", "1"),
    ]
    previous_flags = [r.query.get("previous") for r in stub.log_requests()[-2:]]
    assert previous_flags == ["true", None]
    assert lines_of(ship(source, checkpoints)) == []

    # two restarts between runs: the kubelet kept only the last terminated instance
    stub.write("api-1", "api", T0 + 6 * SECOND, "lost instance")
    stub.restart("api-1", "api")
    stub.write("api-1", "api", T0 + 7 * SECOND, "kept previous")
    stub.restart("api-1", "api")
    stub.write("api-1", "api", T0 + 8 * SECOND, "newest")
    assert lines_of(ship(source, checkpoints)) == ["kept previous", "newest"]
    assert skipped("pods-restart", "restarts_missed") == 1


def test_first_sight_of_a_restarted_container_reads_previous_or_counts_it_missing(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    stub.write("api-1", "api", T0, "before restart")
    stub.restart("api-1", "api")
    stub.write("api-1", "api", T0 + SECOND, "after restart")
    stub.add_pod("batch-1", ["job"])
    stub.pods[("gpt", "batch-1")].containers["job"].restart_count = 2  # previous log already rotated away
    stub.write("batch-1", "job", T0, "current")
    source = make_source(kube_api, "pods-first")

    shipped = lines_of(ship(source, FileCheckpointer(tmp_path)))
    assert shipped == ["before restart", "after restart", "current"]
    assert [o.reason for o in source.outcomes] == ["previous_unavailable"]


def test_pod_deleted_mid_run_keeps_its_position_for_the_grace_period(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("a-1", ["app"])
    stub.add_pod("b-1", ["app"])
    stub.write("a-1", "app", T0, "a line")
    stub.write("b-1", "app", T0, "b line 1")
    clock = Clock(T0)
    source = make_source(kube_api, "pods-gone", clock=clock, pod_grace_seconds=600)
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["a line", "b line 1"]

    stub.write("a-1", "app", T0 + SECOND, "a line 2")
    stub.write("b-1", "app", T0 + SECOND, "b line 2")
    shipped = []
    for batch in source.pull(checkpoints.load(source.id)):  # listing done; b-1 goes away now
        if ("gpt", "b-1") in stub.pods:
            stub.delete_pod("b-1")
        shipped.extend(record.line for record in batch.records)
        checkpoints.commit(source.id, batch.cursor)
    assert shipped == ["a line 2"]
    assert [o.reason for o in source.outcomes] == ["pod_gone"]
    assert skipped("pods-gone", "pod_gone") == 1

    ship(source, checkpoints)  # not listed: the grace period starts
    assert "b-1/app" in checkpoints.load(source.id)["containers"]
    clock.now_ns += 601 * SECOND
    ship(source, checkpoints)
    assert set(checkpoints.load(source.id)["containers"]) == {"a-1/app"}


def test_recreated_pod_with_same_name_starts_from_its_beginning(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("db-0", ["db"])
    stub.write("db-0", "db", T0 + 10 * SECOND, "first pod")
    source = make_source(kube_api, "pods-recreated")
    checkpoints = FileCheckpointer(tmp_path)
    ship(source, checkpoints)
    stub.delete_pod("db-0")
    stub.add_pod("db-0", ["db"])  # new uid; its clock is behind the old pod's last line
    stub.write("db-0", "db", T0 + 9 * SECOND, "second pod")
    assert lines_of(ship(source, checkpoints)) == ["second pod"]


def test_forbidden_and_missing_answers_are_counted_outcomes(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("a-1", ["app"])
    stub.add_pod("secret-1", ["app"])
    stub.write("a-1", "app", T0, "visible")
    stub.write("secret-1", "app", T0, "hidden")
    stub.fail(r"/pods/secret-1/log$", 403)
    source = make_source(kube_api, "pods-403")
    assert lines_of(ship(source, FileCheckpointer(tmp_path))) == ["visible"]
    assert [o.reason for o in source.outcomes] == ["log_forbidden"]
    assert skipped("pods-403", "log_forbidden") == 1

    stub.fail(r"/namespaces/gpt/pods$", 403)
    assert ship(source, FileCheckpointer(tmp_path / "other")) == []
    assert [o.reason for o in source.outcomes] == ["list_forbidden"]
    with pytest.raises(SourceError, match="403"):
        source.check()

    nowhere = make_source(kube_api, "pods-404", namespace="nowhere")
    stub.fail(r"/namespaces/nowhere/pods$", 404)
    assert ship(nowhere, FileCheckpointer(tmp_path / "nowhere")) == []
    assert skipped("pods-404", "namespace_not_found") == 1


def test_server_error_on_listing_is_a_source_error(kube_api: KubeApi, tmp_path: Path) -> None:
    kube_api.state.fail(r"/pods$", 500)
    with pytest.raises(SourceError, match="500"):
        ship(make_source(kube_api, "pods-500"), FileCheckpointer(tmp_path))


def test_kubelet_timestamp_keeps_nanoseconds() -> None:
    assert rfc3339_nano(T0 + 5) == "2026-03-01T12:00:00.000000005Z"
    line_ts, text = PodSource._split(make_bare_source(), f"{rfc3339_nano(T0 + 5)} hello world\n".encode())
    assert (line_ts, text) == (T0 + 5, "hello world")
    assert PodSource._split(make_bare_source(), b"no timestamp here\n") == (None, "no timestamp here")


def make_bare_source() -> PodSource:
    return PodSource(PodsSourceConfig(id="pods-bare"), api_client=None)  # type: ignore[arg-type]


def test_unreachable_api_is_a_source_error_not_a_crash(tmp_path: Path) -> None:
    config = PodsSourceConfig(id="pods-down")
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    configuration.retries = 0
    offline = k8s.ApiClient(configuration)
    with pytest.raises(SourceError, match="unreachable"):
        ship(PodSource.from_config(config, api_client=offline), FileCheckpointer(tmp_path))


def test_log_stream_cut_mid_way_fails_the_run_and_loses_nothing(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("a-1", ["app"])
    stub.add_pod("b-1", ["app"])
    for index in range(3):
        stub.write("a-1", "app", T0 + index, f"a {index}")
        stub.write("b-1", "app", T0 + index, f"b {index}")
    stub.truncate_after("b-1", 1)  # the connection drops after one line of b-1's log
    source = make_source(kube_api, "pods-cut")
    checkpoints = FileCheckpointer(tmp_path)
    committed: list[Batch] = []
    with pytest.raises(SourceError, match="b-1/app"):
        for batch in source.pull(checkpoints.load(source.id)):
            committed.append(batch)
            checkpoints.commit(source.id, batch.cursor)
    assert lines_of(committed) == ["a 0", "a 1", "a 2"]

    stub.truncate_after("b-1", None)
    assert lines_of(ship(source, checkpoints)) == ["b 0", "b 1", "b 2"]


def test_restart_between_listing_and_log_read_ships_both_instances_once(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    stub.write("api-1", "api", T0, "old 1")
    source = make_source(kube_api, "pods-race")
    checkpoints = FileCheckpointer(tmp_path)
    first = ship(source, checkpoints)

    def restart() -> None:  # after the listing (restartCount 0), before the log is served
        stub.restart("api-1", "api")
        stub.write("api-1", "api", T0 + 5 * SECOND, "new 1")

    stub.write("api-1", "api", T0 + SECOND, "old 2 (not shipped yet)")
    stub.before_next_log("api-1", restart)
    racing = ship(source, checkpoints)  # read the new instance as if it were the listed one: dropped
    assert lines_of(racing) == []
    assert checkpoints.load(source.id)["containers"]["api-1/api"]["restart_count"] == 0

    after = records_of(ship(source, checkpoints))
    assert [(r.line, r.metadata["restart_count"]) for r in after] == [
        ("old 2 (not shipped yet)", "0"), ("new 1", "1"),
    ]
    assert lines_of(ship(source, checkpoints)) == []
    assert lines_of(first) + [r.line for r in after] == ["old 1", "old 2 (not shipped yet)", "new 1"]


def test_restart_while_reading_the_previous_instance_is_counted_not_mislabelled(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("api-1", ["api"])
    stub.write("api-1", "api", T0, "a")
    source = make_source(kube_api, "pods-race-previous")
    checkpoints = FileCheckpointer(tmp_path)
    ship(source, checkpoints)
    stub.write("api-1", "api", T0 + SECOND, "b (instance 0)")
    stub.restart("api-1", "api")
    stub.write("api-1", "api", T0 + 2 * SECOND, "c (instance 1)")

    def restart_again() -> None:  # listed with restartCount 1; previous=true now serves instance 1
        stub.restart("api-1", "api")
        stub.write("api-1", "api", T0 + 3 * SECOND, "d (instance 2)")

    stub.before_next_log("api-1", restart_again)
    assert lines_of(ship(source, checkpoints)) == []
    records = records_of(ship(source, checkpoints))
    assert [(r.line, r.metadata["restart_count"]) for r in records] == [
        ("c (instance 1)", "1"), ("d (instance 2)", "2"),
    ]
    assert skipped("pods-race-previous", "restarts_missed") == 1  # instance 0's "b" is gone


def test_pod_recreated_between_listing_and_log_read_is_not_shipped_twice(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    stub = kube_api.state
    stub.add_pod("db-0", ["db"])
    stub.write("db-0", "db", T0, "first pod")
    source = make_source(kube_api, "pods-race-recreated")
    checkpoints = FileCheckpointer(tmp_path)
    assert lines_of(ship(source, checkpoints)) == ["first pod"]

    def recreate() -> None:
        stub.delete_pod("db-0")
        stub.add_pod("db-0", ["db"])
        stub.write("db-0", "db", T0 + SECOND, "second pod")

    stub.before_next_log("db-0", recreate)
    shipped = lines_of(ship(source, checkpoints))
    shipped += lines_of(ship(source, checkpoints))
    shipped += lines_of(ship(source, checkpoints))
    assert shipped == ["second pod"]


def test_a_pod_that_ran_and_finished_between_two_passes_is_shipped_once(
    kube_api: KubeApi, tmp_path: Path
) -> None:
    """A Job's pod that starts and finishes between two passes was never seen running: its whole
    log is still shipped, once."""
    stub = kube_api.state
    source = make_source(kube_api, "pods-job")
    checkpoints = FileCheckpointer(tmp_path)
    assert records_of(ship(source, checkpoints)) == []
    stub.add_pod("job-1", ["main"], phase="Succeeded")
    stub.add_pod("job-2", ["main"], phase="Failed")
    stub.write("job-1", "main", T0, "reconciled 42 trades")
    stub.write("job-2", "main", T0 + 1, "ERROR exchange unreachable")
    assert [r.line for r in records_of(ship(source, checkpoints))] == [
        "reconciled 42 trades", "ERROR exchange unreachable"]
    assert records_of(ship(source, checkpoints)) == []  # read to its end: nothing again
    assert source.outcomes == []
