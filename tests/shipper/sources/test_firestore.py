"""FirestoreSource against the real Firestore emulator (started by tests/firestore_emulator.py)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import PermissionDenied, ServiceUnavailable
from google.cloud import firestore
from google.cloud.firestore_v1._helpers import GeoPoint

from shipper.checkpoint import FileCheckpointer
from shipper.config import FirestoreSourceConfig
from shipper.metrics import REGISTRY
from shipper.models import Batch
from shipper.records import EPOCH_UNITS, parse_timestamp_ns
from shipper.sources.base import SourceError
from shipper.sources.firestore import FirestoreSource, LateWindow, late_window
from tests import firestore_emulator as emulator_fixtures
from tests.firestore_emulator import PROJECT_ID, FirestoreEmulator
from tests.shipper.sources.shipping import records_of, ship

firestore_emulator = emulator_fixtures.firestore_emulator
firestore_client = emulator_fixtures.firestore_client

pytestmark = pytest.mark.emulator

BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_source(
    client: firestore.Client, source_id: str, collections: list[str], **extra: Any
) -> FirestoreSource:
    config = FirestoreSourceConfig(id=source_id, project_id=PROJECT_ID, collections=collections, **extra)
    return FirestoreSource.from_config(config, client=client)


def doc_ids(batches: list[Batch]) -> list[str]:
    return [record.metadata["doc_id"] for record in records_of(batches)]


def skipped(source_id: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "shipper_records_skipped_total", {"source": source_id, "reason": reason}
    ) or 0.0


def test_document_becomes_one_json_line_with_labels_metadata_and_converted_types(
    firestore_client: firestore.Client,
) -> None:
    stamp = BASE + timedelta(microseconds=123456)
    firestore_client.collection("gpt_runner_trades").document("t1").set({
        "timestamp": stamp,
        "severity": "WARNING",
        "symbol": "BTC",
        "owner": firestore_client.document("users/alice"),
        "blob": b"\x00\xffhi",
        "where": GeoPoint(48.85, 2.35),
        "nested": {"at": stamp, "items": [1, "two", None]},
    })
    source = make_source(firestore_client, "fs-types", ["gpt_runner_trades"])

    [record] = records_of(list(source.pull(None)))

    assert json.loads(record.line) == {
        "timestamp": "2026-03-01T12:00:00.123456Z",
        "severity": "WARNING",
        "symbol": "BTC",
        "owner": "users/alice",
        "blob": "AP9oaQ==",
        "where": {"latitude": 48.85, "longitude": 2.35},
        "nested": {"at": "2026-03-01T12:00:00.123456Z", "items": [1, "two", None]},
    }
    assert record.ts_ns == int(BASE.timestamp()) * 10**9 + 123_456_000
    assert record.labels == {
        "source": "firestore", "service_name": "gpt_runner_trades",
        "collection": "gpt_runner_trades", "level": "warn",
    }
    assert record.metadata["doc_id"] == "t1"
    assert record.metadata["update_time"].endswith("Z") and record.metadata["update_time"].startswith("20")


def test_pages_restart_from_checkpoint_and_ship_every_document_exactly_once(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    for index in range(23):
        # two documents share each timestamp: the document id breaks the tie
        trades.document(f"d{index:02d}").set({"timestamp": BASE + timedelta(seconds=index // 2), "n": index})
    source = make_source(firestore_client, "fs-e2e", ["gpt_runner_trades"], page_size=5)
    checkpoints = FileCheckpointer(tmp_path)

    first = ship(source, checkpoints, stop_after=2)  # crash after two committed pages
    second = ship(source, checkpoints)
    assert all(len(batch.records) <= 5 for batch in first + second)
    assert doc_ids(first) == [f"d{index:02d}" for index in range(10)]
    assert sorted(doc_ids(first) + doc_ids(second)) == [f"d{index:02d}" for index in range(23)]

    trades.document("new").set({"timestamp": BASE + timedelta(hours=1)})
    third = ship(source, checkpoints)
    assert doc_ids(third) == ["new"]
    assert doc_ids(ship(source, checkpoints)) == []


def test_updated_documents_are_not_reshipped_unless_their_timestamp_moves(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("a").set({"timestamp": BASE, "status": "open"})
    trades.document("b").set({"timestamp": BASE + timedelta(seconds=1), "status": "open"})
    source = make_source(firestore_client, "fs-update", ["gpt_runner_trades"])
    checkpoints = FileCheckpointer(tmp_path)
    assert doc_ids(ship(source, checkpoints)) == ["a", "b"]

    trades.document("a").update({"status": "closed"})
    assert doc_ids(ship(source, checkpoints)) == []

    trades.document("a").update({"timestamp": BASE + timedelta(minutes=5), "status": "reopened"})
    [record] = records_of(ship(source, checkpoints))
    assert json.loads(record.line)["status"] == "reopened"


def test_documents_without_the_field_are_counted_once_not_silently_dropped(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("good").set({"timestamp": BASE})
    trades.document("no-field").set({"other": 1})
    trades.document("null-field").set({"timestamp": None})
    source = make_source(firestore_client, "fs-missing", ["gpt_runner_trades"])
    checkpoints = FileCheckpointer(tmp_path)

    assert doc_ids(ship(source, checkpoints)) == ["good"]
    assert skipped("fs-missing", "no_timestamp_field") == 2
    assert [(o.reason, o.count) for o in source.outcomes] == [("no_timestamp_field", 2)]

    ship(source, checkpoints)
    assert skipped("fs-missing", "no_timestamp_field") == 2  # already counted

    trades.document("another").set({"created": "x"})
    ship(source, checkpoints)
    assert skipped("fs-missing", "no_timestamp_field") == 3


def test_mixed_types_each_keep_their_own_position(firestore_client: firestore.Client, tmp_path: Path) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    epoch = int(BASE.timestamp())
    trades.document("num").set({"timestamp": epoch})
    trades.document("str").set({"timestamp": "2026-03-01T12:00:02.5Z"})
    trades.document("native").set({"timestamp": BASE + timedelta(seconds=1)})
    trades.document("garbage").set({"timestamp": "soon"})
    source = make_source(firestore_client, "fs-mixed", ["gpt_runner_trades"])
    checkpoints = FileCheckpointer(tmp_path)

    by_id = {r.metadata["doc_id"]: r.ts_ns for r in records_of(ship(source, checkpoints))}
    assert by_id == {
        "num": epoch * 10**9,
        "native": (epoch + 1) * 10**9,
        "str": (epoch + 2) * 10**9 + 500_000_000,
    }
    assert skipped("fs-mixed", "bad_timestamp") == 1

    # Firestore sorts timestamps before strings: a plain start_after would never reach this one.
    trades.document("native-late").set({"timestamp": BASE + timedelta(hours=1)})
    trades.document("num-late").set({"timestamp": epoch + 7200})
    assert sorted(doc_ids(ship(source, checkpoints))) == ["native-late", "num-late"]
    assert skipped("fs-mixed", "bad_timestamp") == 1


def test_default_field_is_created_at_then_update_time(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    firestore_client.collection("made").document("m1").set({"created_at": BASE})
    bare = firestore_client.collection("bare")
    bare.document("b1").set({"note": "no time field"})
    source = make_source(firestore_client, "fs-defaults", ["made", "bare"], page_size=2)
    checkpoints = FileCheckpointer(tmp_path)

    first = records_of(ship(source, checkpoints))
    assert [(r.labels["collection"], r.metadata["doc_id"]) for r in first] == [("made", "m1"), ("bare", "b1")]
    assert first[0].ts_ns == int(BASE.timestamp()) * 10**9
    assert first[1].metadata["update_time"].endswith("Z")
    saved = checkpoints.load("fs-defaults")["collections"]
    assert (saved["made"]["field"], saved["bare"]["field"]) == ("created_at", "__update_time__")

    for index in range(3):  # more than a page
        bare.document(f"b{index + 2}").set({"note": index})
    bare.document("b1").update({"note": "edited"})  # update_time mode: an update is a new event
    second = records_of(ship(source, checkpoints))
    assert sorted(r.metadata["doc_id"] for r in second) == ["b1", "b2", "b3", "b4"]
    assert json.loads(next(r.line for r in second if r.metadata["doc_id"] == "b1")) == {"note": "edited"}
    assert records_of(ship(source, checkpoints)) == []


def test_configured_field_and_empty_collection(firestore_client: firestore.Client, tmp_path: Path) -> None:
    source = make_source(
        firestore_client, "fs-empty", ["later"], timestamp_fields={"later": "event.at"}
    )
    checkpoints = FileCheckpointer(tmp_path)
    assert records_of(ship(source, checkpoints)) == []
    assert [o.reason for o in source.outcomes] == ["empty_collection"]
    assert "later: empty" in source.check()

    firestore_client.collection("later").document("x").set({"event": {"at": BASE}, "timestamp": "ignored"})
    [record] = records_of(ship(source, checkpoints))
    assert record.ts_ns == int(BASE.timestamp()) * 10**9

    switched = make_source(firestore_client, "fs-empty", ["later"], timestamp_fields={"later": "timestamp"})
    assert records_of(ship(switched, checkpoints)) == []
    assert [o.reason for o in switched.outcomes] == ["timestamp_field_changed"]


class OneCollectionDenied(firestore.Client):
    """A real emulator client, except that one collection answers like Firestore does when IAM
    denies it (the emulator enforces security rules only for end-user tokens) and one like an
    unreachable service."""

    def collection(self, *path: str) -> Any:
        if path == ("secret",):
            raise PermissionDenied("Missing or insufficient permissions.")
        if path == ("down",):
            raise ServiceUnavailable("failed to connect to all addresses")
        return super().collection(*path)


def test_permission_error_is_an_outcome_and_other_collections_still_ship(
    firestore_emulator: FirestoreEmulator, firestore_client: firestore.Client, tmp_path: Path
) -> None:
    firestore_client.collection("open").document("o1").set({"timestamp": BASE})
    client = OneCollectionDenied(project=firestore_emulator.project_id)
    source = make_source(client, "fs-denied", ["secret", "open"])

    assert doc_ids(ship(source, FileCheckpointer(tmp_path))) == ["o1"]
    assert [o.reason for o in source.outcomes] == ["collection_error:PermissionDenied"]
    assert skipped("fs-denied", "collection_error:PermissionDenied") == 1


def test_rejected_credentials_are_outcomes_for_every_collection(
    firestore_emulator: FirestoreEmulator, firestore_client: firestore.Client, tmp_path: Path
) -> None:
    firestore_client.collection("open").document("o1").set({"timestamp": BASE})
    client = firestore.Client(project=firestore_emulator.project_id)
    # a malformed token: the emulator itself rejects every call
    client._rpc_metadata_internal = [
        item for item in client._rpc_metadata if item[0] != "authorization"
    ] + [("authorization", "Bearer not-a-jwt")]
    source = make_source(client, "fs-badauth", ["open", "gpt_runner_trades"])

    assert ship(source, FileCheckpointer(tmp_path)) == []
    assert [o.reason for o in source.outcomes] == ["collection_error:InvalidArgument"] * 2
    assert "open: error InvalidArgument" in source.check()


def test_unreachable_firestore_fails_the_run_after_committing_what_shipped(
    firestore_emulator: FirestoreEmulator, firestore_client: firestore.Client, tmp_path: Path
) -> None:
    firestore_client.collection("open").document("o1").set({"timestamp": BASE})
    client = OneCollectionDenied(project=firestore_emulator.project_id)
    source = make_source(client, "fs-down", ["open", "down"])
    checkpoints = FileCheckpointer(tmp_path)
    shipped: list[Batch] = []
    with pytest.raises(SourceError, match="unavailable"):
        for batch in source.pull(checkpoints.load(source.id)):
            shipped.append(batch)
            checkpoints.commit(source.id, batch.cursor)
    assert doc_ids(shipped) == ["o1"]
    assert "open" in checkpoints.load(source.id)["collections"]


def test_update_time_mode_bound_never_comes_from_the_local_clock(
    firestore_client: firestore.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(firestore_client, "fs-skew", ["later"], timestamp_fields={"later": "update_time"})
    checkpoints = FileCheckpointer(tmp_path)
    real_time_ns = time.time_ns
    with monkeypatch.context() as patched:
        patched.setattr(time, "time_ns", lambda: real_time_ns() + 3600 * 10**9)  # our clock runs 1 h ahead
        assert records_of(ship(source, checkpoints)) == []  # the collection is still empty

    firestore_client.collection("later").document("x").set({"note": "written after the empty scan"})
    assert doc_ids(ship(source, checkpoints)) == ["x"]


# -- late-arrival window ------------------------------------------------------------------------


def adjusted(source_id: str, reason: str) -> float:
    return REGISTRY.get_sample_value(
        "shipper_records_adjusted_total", {"source": source_id, "reason": reason}
    ) or 0.0


def lane_cursor(checkpoints: FileCheckpointer, source_id: str, lane: str) -> dict[str, Any]:
    return checkpoints.load(source_id)["collections"]["gpt_runner_trades"]["lanes"][lane]


def test_late_document_inside_the_window_is_shipped_once_and_counted(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    epoch_ms = int(BASE.timestamp()) * 1000
    trades.document("a").set({"timestamp": BASE})
    trades.document("b").set({"timestamp": BASE + timedelta(seconds=10)})
    trades.document("n").set({"timestamp": epoch_ms + 10_000})  # number lane, milliseconds
    source = make_source(firestore_client, "fs-late", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    assert sorted(doc_ids(ship(source, checkpoints))) == ["a", "b", "n"]

    # stamped "now" by their writers, visible only after the pass above moved the lanes past them
    trades.document("late").set({"timestamp": BASE + timedelta(seconds=8)})
    trades.document("a-tie").set({"timestamp": BASE + timedelta(seconds=10)})  # same value, id before "b"
    trades.document("n-late").set({"timestamp": epoch_ms + 4_000})
    by_id = {r.metadata["doc_id"]: r.ts_ns for r in records_of(ship(source, checkpoints))}
    second = 10**9
    base_ns = int(BASE.timestamp()) * second
    assert by_id == {
        "late": base_ns + 8 * second, "a-tie": base_ns + 10 * second, "n-late": base_ns + 4 * second,
    }
    assert adjusted("fs-late", "late_arrival") == 3
    assert sorted((o.reason, o.count) for o in source.outcomes) == [("late_arrival", 1), ("late_arrival", 2)]

    assert doc_ids(ship(source, checkpoints)) == []
    assert doc_ids(ship(source, checkpoints)) == []
    assert adjusted("fs-late", "late_arrival") == 3
    assert source.outcomes == []


def test_documents_below_the_window_are_still_not_found(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("a").set({"timestamp": BASE + timedelta(minutes=10)})
    trades.document("s").set({"timestamp": "2026-03-01T12:10:00Z"})
    source = make_source(firestore_client, "fs-too-late", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    assert sorted(doc_ids(ship(source, checkpoints))) == ["a", "s"]

    # 2 min below the position, the window is 1 min: in the timestamp lane and in the string lane
    trades.document("too-late").set({"timestamp": BASE + timedelta(minutes=8)})
    trades.document("s-too-late").set({"timestamp": "2026-03-01T12:08:00Z"})
    assert doc_ids(ship(source, checkpoints)) == []
    assert adjusted("fs-too-late", "late_arrival") == 0

    # late_window_seconds=0 turns the window off: then even a document 5 s late is not found
    off = make_source(firestore_client, "fs-no-window", ["gpt_runner_trades"], late_window_seconds=0)
    assert len(doc_ids(ship(off, checkpoints))) == 4
    trades.document("in-window").set({"timestamp": BASE + timedelta(minutes=10, seconds=-5)})
    assert doc_ids(ship(off, checkpoints)) == []
    assert "shipped" not in lane_cursor(checkpoints, "fs-no-window", "timestamp")


def test_late_texts_in_the_string_lane_are_shipped_once_and_counted(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    # as Python's datetime.isoformat() writes them: a fraction only when there is one
    trades.document("a").set({"timestamp": "2026-03-01T12:10:00.250000+00:00"})
    # sorts inside the window's bounds, but its moment (11:24:30Z) is long before the window
    trades.document("old").set({"timestamp": "2026-03-01T12:09:30+00:45"})
    source = make_source(firestore_client, "fs-late-text", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    assert doc_ids(ship(source, checkpoints)) == ["old", "a"]

    trades.document("no-fraction").set({"timestamp": "2026-03-01T12:09:58+00:00"})
    trades.document("edge").set({"timestamp": "2026-03-01T12:09:00.000001+00:00"})  # 60 s minus 1 us below
    trades.document("other-offset").set({"timestamp": "2026-03-01T12:09:45-00:30"})  # sorts inside, 12:39:45Z
    trades.document("too-late").set({"timestamp": "2026-03-01T12:08:59.999999+00:00"})
    by_id = {r.metadata["doc_id"]: r.ts_ns for r in records_of(ship(source, checkpoints))}
    assert by_id == {
        "no-fraction": parse_timestamp_ns("2026-03-01T12:09:58Z"),
        "edge": parse_timestamp_ns("2026-03-01T12:09:00.000001Z"),
        "other-offset": parse_timestamp_ns("2026-03-01T12:39:45Z"),
    }
    assert adjusted("fs-late-text", "late_arrival") == 3
    assert [(o.reason, o.count) for o in source.outcomes] == [("late_arrival", 3)]
    assert doc_ids(ship(source, checkpoints)) == []
    assert adjusted("fs-late-text", "late_arrival") == 3


def test_a_position_on_a_text_without_a_window_forgets_nothing_it_shipped(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    """A page that ends on a text that is no time, or on one without a text bound (minute
    precision), left the lane without its digests: the next window shipped its documents again."""
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("a").set({"timestamp": "2026-03-01T12:00:00Z"})
    trades.document("junk").set({"timestamp": "2026-03-01T12:00:00Z (retry)"})  # no time
    trades.document("b").set({"timestamp": "2026-03-01T12:00:05Z"})
    trades.document("minute").set({"timestamp": "2026-03-01T12:01Z"})  # a time without a text bound
    trades.document("c").set({"timestamp": "2026-03-01T12:01:10Z"})
    source = make_source(firestore_client, "fs-no-bound", ["gpt_runner_trades"], page_size=2,
                         late_window_seconds=300)
    checkpoints = FileCheckpointer(tmp_path)
    # text order: pages [a, junk] [b, c] [minute], so two pages end on a text without a window
    assert doc_ids(ship(source, checkpoints)) == ["a", "b", "c", "minute"]
    assert skipped("fs-no-bound", "bad_timestamp") == 1
    trades.document("d").set({"timestamp": "2026-03-01T12:02:00Z"})  # a window over all of them
    assert doc_ids(ship(source, checkpoints)) == ["d"]
    for _ in range(2):
        assert doc_ids(ship(source, checkpoints)) == []
    assert adjusted("fs-no-bound", "late_arrival") == 0


def test_string_lane_edge_values_epoch_fraction_at_the_bound_and_endless_digits(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("p").set({"timestamp": "1772366492565"})  # epoch ms
    source = make_source(firestore_client, "fs-ms-text", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    assert doc_ids(ship(source, checkpoints)) == ["p"]
    trades.document("at-bound").set({"timestamp": "1772366432565.0"})  # exactly the position - 60 s
    trades.document("endless").set({"timestamp": "9" * 5000 + ".5"})  # sorts last; no time
    assert doc_ids(ship(source, checkpoints)) == ["at-bound"]  # no crash, nothing lost
    assert skipped("fs-ms-text", "bad_timestamp") == 1
    assert doc_ids(ship(source, checkpoints)) == []


@pytest.mark.parametrize(
    ("source_id", "written_as"),
    [
        ("fs-reruns", lambda moment: moment),  # the timestamp lane
        # the string lane: a fraction only when there is one, a fixed fraction, epoch milliseconds
        ("fs-reruns-isoformat", lambda moment: moment.isoformat()),
        ("fs-reruns-z", lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S.%fZ")),
        ("fs-reruns-epoch-ms", lambda moment: str(int(moment.timestamp() * 1000))),
    ],
)
def test_repeated_passes_never_reship_a_document(
    firestore_client: firestore.Client, tmp_path: Path, source_id: str, written_as: Any
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    source = make_source(firestore_client, source_id, ["gpt_runner_trades"], page_size=3)
    checkpoints = FileCheckpointer(tmp_path)
    written: list[str] = []
    shipped: list[str] = []
    for round_no in range(4):
        top = BASE + timedelta(seconds=30 * round_no)
        for index in range(5):  # ahead of the position, two sharing each second
            moment = top + timedelta(seconds=index // 2)
            trades.document(f"r{round_no}-new{index}").set({"timestamp": written_as(moment)})
            written.append(f"r{round_no}-new{index}")
        shipped += doc_ids(ship(source, checkpoints))
        for index in range(4):  # now behind the position (top + 2 s), inside the window
            moment = top - timedelta(seconds=index, microseconds=250_000 * index)
            trades.document(f"r{round_no}-late{index}").set({"timestamp": written_as(moment)})
            written.append(f"r{round_no}-late{index}")
        trades.document(f"r{round_no}-new0").update({"status": "edited"})  # not re-shipped
        for _ in range(2):
            shipped += doc_ids(ship(source, checkpoints))
    assert sorted(shipped) == sorted(written)  # every document, each exactly once
    assert adjusted(source_id, "late_arrival") == 4 * 4


def test_crash_after_every_batch_still_ships_each_late_document_once(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    for index in range(4):
        trades.document(f"d{index}").set({"timestamp": BASE + timedelta(seconds=10 + index)})
    source = make_source(firestore_client, "fs-late-crash", ["gpt_runner_trades"], page_size=2)
    checkpoints = FileCheckpointer(tmp_path)
    assert doc_ids(ship(source, checkpoints)) == ["d0", "d1", "d2", "d3"]

    late = [f"late{index}" for index in range(5)]
    for index, doc_id in enumerate(late):
        trades.document(doc_id).set({"timestamp": BASE + timedelta(seconds=index)})
    new = [f"new{index}" for index in range(3)]
    for index, doc_id in enumerate(new):
        trades.document(doc_id).set({"timestamp": BASE + timedelta(seconds=20 + index)})
    shipped: list[str] = []
    for _ in range(10):  # every pass 'crashes' right after committing its first batch
        pass_ids = doc_ids(ship(source, checkpoints, stop_after=1))
        if not pass_ids:
            break
        shipped += pass_ids
    assert sorted(shipped) == sorted(late + new)  # each exactly once
    assert adjusted("fs-late-crash", "late_arrival") == 5
    assert doc_ids(ship(source, checkpoints)) == []


def test_cursor_keeps_only_the_digests_inside_the_window(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    source = make_source(firestore_client, "fs-bounded", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    for round_no in range(4):  # 4 x 100 documents, one a second
        batch = firestore_client.batch()
        for index in range(100):
            second = round_no * 100 + index
            batch.set(trades.document(f"d{second:04d}"), {"timestamp": BASE + timedelta(seconds=second)})
        batch.commit()
        assert len(doc_ids(ship(source, checkpoints))) == 100
        # the documents of [position - 60 s, position], one a second: 61, whatever came before
        assert len(lane_cursor(checkpoints, "fs-bounded", "timestamp")["shipped"]) == 61
    assert len(json.dumps(lane_cursor(checkpoints, "fs-bounded", "timestamp"))) < 61 * 45


def test_checkpoint_from_before_the_window_loads_and_resends_one_window_at_most(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    for index in range(6):
        trades.document(f"d{index}").set({"timestamp": BASE + timedelta(seconds=30 * index)})
    source = make_source(firestore_client, "fs-upgrade", ["gpt_runner_trades"], late_window_seconds=60)
    checkpoints = FileCheckpointer(tmp_path)
    first = records_of(ship(source, checkpoints))
    cursor = checkpoints.load(source.id)
    del cursor["collections"]["gpt_runner_trades"]["lanes"]["timestamp"]["shipped"]  # the old format
    checkpoints.commit(source.id, cursor)

    again = records_of(ship(source, checkpoints))
    # the window's documents (d3..d5, within 60 s of d5) again, as identical entries: Loki drops them
    assert [(r.ts_ns, r.line, r.labels) for r in again] == [(r.ts_ns, r.line, r.labels) for r in first[3:]]
    assert doc_ids(ship(source, checkpoints)) == []


def test_number_lane_window_stays_in_the_unit_parse_timestamp_ns_gives_the_position() -> None:
    for floor, per_second in EPOCH_UNITS:  # the same magnitudes as the shared parser
        assert parse_timestamp_ns(floor + per_second) == (floor + per_second) * 10**9 // per_second
    seconds = int(BASE.timestamp())
    in_ms = late_window("number", seconds * 1000, 60)
    assert in_ms == LateWindow(seconds * 1000 - 60_000, (seconds - 60) * 10**9)
    assert late_window("number", 10**11 + 5, 60).lowest == 10**11  # clamped: not read as seconds
    assert late_window("timestamp", BASE, 0) is None


@pytest.mark.parametrize(
    ("position", "lowest", "since"),
    [
        ("2026-03-01T12:00:30Z", "2026-03-01T11:59:30", "2026-03-01T11:59:30Z"),
        # the bound is in the position's own offset and separator, floored to the second
        ("2026-03-01T12:00:30.123456789+05:30", "2026-03-01T11:59:30", "2026-03-01T06:29:30Z"),
        ("2026-03-01t00:00:10-08:00", "2026-02-28t23:59:10", "2026-03-01T07:59:10Z"),
        ("2026-03-01 12:00:30.5", "2026-03-01 11:59:30", "2026-03-01T11:59:30Z"),  # no offset: UTC
        # epoch digits keep their count (and unit)
        ("1772366430", "1772366370", "2026-03-01T11:59:30Z"),
        ("1772366430.75", "1772366370", "2026-03-01T11:59:30Z"),
        ("1772366430123", "1772366370123", "2026-03-01T11:59:30.123Z"),
    ],
)
def test_string_lane_window_is_a_text_bound_in_the_positions_layout(
    position: str, lowest: str, since: str
) -> None:
    assert late_window("string", position, 60) == LateWindow(lowest, parse_timestamp_ns(since))


@pytest.mark.parametrize(
    "position",
    ["yesterday", "2026-03-01T12:00:30Z junk", " 1772366430", "0", "0001772366430", "0001-01-01T00:00:10Z"],
)
def test_string_lane_has_no_window_for_texts_without_a_text_bound(position: str) -> None:
    assert late_window("string", position, 60) is None


@dataclass(frozen=True)
class TextLayout:
    offset_minutes: int
    separator: str
    suffix: str  # "Z", "" (no offset: UTC) or "offset"

    def text(self, ns: int, fraction_digits: int) -> str:
        wall = datetime(1970, 1, 1) + timedelta(seconds=ns // 10**9, minutes=self.offset_minutes)
        fraction = f".{ns % 10**9:09d}"[: fraction_digits + 1] if fraction_digits else ""
        suffix = self.suffix
        if suffix == "offset":
            sign = "-" if self.offset_minutes < 0 else "+"
            hours, minutes = divmod(abs(self.offset_minutes), 60)
            suffix = f"{sign}{hours:02d}:{minutes:02d}"
        return wall.isoformat(sep=self.separator, timespec="seconds") + fraction + suffix


def test_every_text_of_the_positions_layout_inside_the_window_sorts_inside_the_bounds() -> None:
    """Random layouts, positions, windows and fraction lengths: a text of the position's layout
    whose moment lies in [since, position] sorts at or after the bound."""
    rng = random.Random(20261205)
    layouts = [TextLayout(0, sep, suffix) for sep in "Tt " for suffix in ("Z", "", "offset")]
    layouts += [TextLayout(minutes, "T", "offset") for minutes in (330, -480, 60, 840, -720)]
    for _ in range(3000):
        layout = rng.choice(layouts)
        seconds = rng.choice([1, 59, 60, 300, 3600])
        position = layout.text(rng.randrange(10**18, 2 * 10**18), rng.randint(0, 9))
        position_ns = parse_timestamp_ns(position)
        window = late_window("string", position, seconds)
        assert window is not None and position_ns is not None, position
        assert window.since_ns <= position_ns - seconds * 10**9 and window.lowest <= position
        for _ in range(5):
            inside = layout.text(rng.randrange(window.since_ns, position_ns + 1), rng.randint(0, 9))
            assert window.lowest <= inside, (position, inside, window)


def test_a_value_that_is_no_time_never_stops_its_lane(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    """`str(None)` sorts after every RFC 3339 text, infinity after every number: were the lane's
    position to move onto them, every document written later would sort below it and never be
    read. They are counted once; the lane stays on the last time it read."""
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("a").set({"timestamp": "2026-03-01T12:00:00Z"})
    trades.document("none").set({"timestamp": "None"})
    trades.document("n1").set({"timestamp": int(BASE.timestamp())})
    trades.document("inf").set({"timestamp": float("inf")})
    source = make_source(firestore_client, "fs-no-time", ["gpt_runner_trades"], page_size=1)
    checkpoints = FileCheckpointer(tmp_path)
    assert sorted(doc_ids(ship(source, checkpoints))) == ["a", "n1"]
    assert skipped("fs-no-time", "bad_timestamp") == 2
    trades.document("b").set({"timestamp": "2026-03-01T12:00:05Z"})
    trades.document("n2").set({"timestamp": int(BASE.timestamp()) + 5})
    assert sorted(doc_ids(ship(source, checkpoints))) == ["b", "n2"]
    assert doc_ids(ship(source, checkpoints)) == []
    assert skipped("fs-no-time", "bad_timestamp") == 2  # counted once, though read by every pass


def test_a_document_stamped_ahead_of_the_clock_waits_and_stops_nothing(
    firestore_client: firestore.Client, tmp_path: Path
) -> None:
    """A writer's clock two hours fast: the lane stops before that document instead of moving onto
    it; documents written meanwhile still ship, and it ships once its time has come."""
    trades = firestore_client.collection("gpt_runner_trades")
    trades.document("a").set({"timestamp": BASE})
    trades.document("fast").set({"timestamp": BASE + timedelta(hours=2)})
    source = make_source(firestore_client, "fs-ahead", ["gpt_runner_trades"])
    source.clock = lambda: int(BASE.timestamp()) * 10**9 + 60 * 10**9
    checkpoints = FileCheckpointer(tmp_path)
    assert doc_ids(ship(source, checkpoints)) == ["a"]
    assert [outcome.reason for outcome in source.outcomes] == ["future_timestamp"]
    trades.document("b").set({"timestamp": BASE + timedelta(seconds=30)})
    assert doc_ids(ship(source, checkpoints)) == ["b"]
    source.clock = lambda: int(BASE.timestamp()) * 10**9 + 3 * 3600 * 10**9
    assert doc_ids(ship(source, checkpoints)) == ["fast"]
    assert doc_ids(ship(source, checkpoints)) == []
