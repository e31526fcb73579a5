"""ops-stack/demo/seed.py against real emulators: gcp-storage-emulator for GCS and the Cloud SDK's
Firestore emulator. What it writes must be what the shipper reads: JSON lines and documents whose
level and timestamp come from the record."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from shipper.config import DEFAULT_FIRESTORE_COLLECTIONS, DEFAULT_GCS_PREFIXES, DEFAULT_TIMESTAMP_FIELDS
from shipper.models import LEVELS
from shipper.records import level_of, timestamp_from_fields
from tests import firestore_emulator as emulator_fixtures
from tests.conftest import free_port
from tests.ops.conftest import REPO

pytestmark = pytest.mark.emulator

# the session's real Firestore emulator (tests/firestore_emulator.py); this test uses its own project
firestore_emulator = emulator_fixtures.firestore_emulator

SEED = REPO / "ops-stack/demo/seed.py"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def load_seed() -> ModuleType:
    """The script as a module (it is not part of the installed packages)."""
    if "demo_seed" in sys.modules:
        return sys.modules["demo_seed"]
    spec = importlib.util.spec_from_file_location("demo_seed", SEED)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_seed"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def gcs_emulator(monkeypatch) -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    host = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    try:
        yield host
    finally:
        server.stop()


def test_refuses_to_run_outside_the_emulators() -> None:
    seed = load_seed()
    with pytest.raises(SystemExit, match="STORAGE_EMULATOR_HOST"):
        seed.require_emulators({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:8080"})


def test_defaults_are_the_shippers() -> None:
    settings = load_seed().SeedSettings.from_env({})
    assert settings.prefixes == DEFAULT_GCS_PREFIXES
    assert settings.collections == DEFAULT_FIRESTORE_COLLECTIONS


def test_seeds_objects_and_documents_the_shipper_can_read(gcs_emulator, firestore_emulator, tmp_path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore, storage

    seed = load_seed()
    settings = seed.SeedSettings.from_env({
        "GCS_BUCKET_NAME": "demo-test", "FIRESTORE_PROJECT_ID": "demo-test", "DEMO_BACKFILL_MINUTES": "30",
        "DEMO_LINES_PER_OBJECT": "12", "DEMO_DOCS_PER_COLLECTION": "5",
        "DEMO_HEARTBEAT_FILE": str(tmp_path / "heartbeat")})
    seed.run(settings, now=NOW)

    assert (tmp_path / "heartbeat").exists()
    client = storage.Client(project="demo-test", credentials=AnonymousCredentials())
    earliest = NOW - timedelta(minutes=30)
    for prefix in DEFAULT_GCS_PREFIXES:
        blobs = list(client.list_blobs("demo-test", prefix=prefix))
        assert len(blobs) == 3, prefix  # one object per 10 minutes of backfill
        lines = blobs[0].download_as_bytes().decode().splitlines()
        assert len(lines) == 12
        for line in lines:
            record = json.loads(line)
            assert level_of(record, line) in LEVELS and level_of(record, line) != "unknown"
            ts_ns = timestamp_from_fields(record, DEFAULT_TIMESTAMP_FIELDS)
            assert ts_ns is not None and earliest.timestamp() * 1e9 <= ts_ns < NOW.timestamp() * 1e9

    db = firestore.Client(project="demo-test")
    for collection in DEFAULT_FIRESTORE_COLLECTIONS:
        documents = list(db.collection(collection).stream())
        assert len(documents) == 5, collection
        for document in documents:
            data = document.to_dict()
            assert data["level"] in LEVELS
            assert earliest <= data["timestamp"] <= NOW

    seed.run(settings, now=NOW + timedelta(minutes=25))  # a restart does not write a second history
    assert len(list(client.list_blobs("demo-test", prefix=DEFAULT_GCS_PREFIXES[0]))) == 3
    assert len(list(db.collection(DEFAULT_FIRESTORE_COLLECTIONS[0]).stream())) == 5

    later = NOW + timedelta(seconds=30)
    added = seed.add_round(client.bucket("demo-test"), db, settings, seed.random.Random(1), later)
    assert len(added) == len(DEFAULT_GCS_PREFIXES)
    for line in client.bucket("demo-test").blob(added[0]).download_as_bytes().decode().splitlines():
        ts_ns = timestamp_from_fields(json.loads(line), DEFAULT_TIMESTAMP_FIELDS)
        assert ts_ns is not None and NOW.timestamp() * 1e9 < ts_ns <= later.timestamp() * 1e9
    assert len(list(db.collection(DEFAULT_FIRESTORE_COLLECTIONS[0]).stream())) == 6
