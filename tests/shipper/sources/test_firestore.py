"""FirestoreSource against the real Firestore emulator (started by tests/firestore_emulator.py)."""

from __future__ import annotations

import json
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
from shipper.models import Batch, LogRecord
from shipper.sources.base import SourceError
from shipper.sources.firestore import FirestoreSource
from tests import firestore_emulator as emulator_fixtures
from tests.firestore_emulator import PROJECT_ID, FirestoreEmulator

firestore_emulator = emulator_fixtures.firestore_emulator
firestore_client = emulator_fixtures.firestore_client

pytestmark = pytest.mark.emulator

BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_source(
    client: firestore.Client, source_id: str, collections: list[str], **extra: Any
) -> FirestoreSource:
    config = FirestoreSourceConfig(id=source_id, project_id=PROJECT_ID, collections=collections, **extra)
    return FirestoreSource.from_config(config, client=client)


def ship(
    source: FirestoreSource, checkpoints: FileCheckpointer, stop_after: int | None = None
) -> list[Batch]:
    """What the pipeline does: load, pull, commit each batch's cursor (optionally 'crash' early)."""
    batches = []
    for batch in source.pull(checkpoints.load(source.id)):
        batches.append(batch)
        checkpoints.commit(source.id, batch.cursor)
        if stop_after is not None and len(batches) >= stop_after:
            break
    return batches


def records_of(batches: list[Batch]) -> list[LogRecord]:
    return [record for batch in batches for record in batch.records]


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
