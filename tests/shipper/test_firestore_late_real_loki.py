"""Firestore documents written late (stamped minutes before the newest already shipped) reach the
real Loki exactly once with the default configuration; the Firestore emulator is real too."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from google.cloud import firestore

from shipper.checkpoint import FileCheckpointer
from shipper.config import FirestoreSourceConfig
from shipper.pipeline import Pipeline
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sources.firestore import FirestoreSource
from tests import firestore_emulator as emulator_fixtures
from tests.firestore_emulator import PROJECT_ID
from tests.real_loki import RealLoki, run_id

firestore_emulator = emulator_fixtures.firestore_emulator
firestore_client = emulator_fixtures.firestore_client

pytestmark = pytest.mark.emulator

S = 1_000_000_000


def _pipeline(client: firestore.Client, collection: str, loki: RealLoki, state: Path,
              http: httpx.Client) -> Pipeline:
    config = FirestoreSourceConfig(id=f"fs-{collection}", project_id=PROJECT_ID, collections=[collection])
    source = FirestoreSource.from_config(config, client=client)
    return Pipeline(source, LokiSink(LokiSinkConfig(url=loki.url), http), FileCheckpointer(state))


def test_documents_stamped_up_to_50_minutes_back_added_after_a_pass_ship_once_by_default(
    firestore_client: firestore.Client, real_loki: RealLoki, tmp_path: Path
) -> None:
    collection = run_id("late")
    docs = firestore_client.collection(collection)
    now = datetime.now(UTC)
    for i in range(3):
        docs.document(f"on-time-{i}").set({"timestamp": now - timedelta(seconds=i), "key": f"on-time-{i}"})
    with httpx.Client(timeout=30) as http:
        pipeline = _pipeline(firestore_client, collection, real_loki, tmp_path, http)
        first = pipeline.run_once()
        assert (first.ok, first.accepted) == (True, 3)

        # a batch job, retries, reflections: written now, stamped 1 to 50 minutes in the past
        rng = random.Random(14)
        late: dict[str, datetime] = {}
        for i in range(40):
            late[f"late-{i:02d}"] = now - timedelta(minutes=1 + 49 * i / 39, seconds=rng.random())
        for doc_id, stamp in rng.sample(sorted(late.items()), len(late)):
            docs.document(doc_id).set({"timestamp": stamp, "key": doc_id})

        second = pipeline.run_once()
        third = pipeline.run_once()

    assert (second.ok, second.accepted, second.rejected_total) == (True, 40, 0)
    assert (third.ok, third.accepted) == (True, 0)
    start_ns = int((now - timedelta(hours=2)).timestamp()) * S
    end_ns = int(now.timestamp()) * S + 60 * S
    lines = real_loki.all_lines(f'{{collection="{collection}"}}', start_ns=start_ns, end_ns=end_ns)
    shipped = Counter(json.loads(line)["key"] for line in lines)
    assert shipped == Counter([f"on-time-{i}" for i in range(3)] + sorted(late))  # each exactly once


def test_check_says_what_the_late_window_covers(firestore_client: firestore.Client) -> None:
    config = FirestoreSourceConfig(project_id=PROJECT_ID, collections=[run_id("chk")])
    text = FirestoreSource.from_config(config, client=firestore_client).check()
    assert "late documents: a document stamped up to 1 h before the newest one already read is still " \
           "shipped, once" in text
    off = FirestoreSourceConfig(project_id=PROJECT_ID, collections=["x"], late_window_seconds=0)
    assert "window off" in FirestoreSource.from_config(off, client=firestore_client).check()


def test_default_window_is_at_least_an_hour() -> None:
    assert FirestoreSourceConfig(project_id="p").late_window_seconds >= 3600
