"""Firestore (real emulator) and pod logs (Kubernetes API stub) through Pipeline -> LokiSink ->
LokiMock: ship, crash between a push and its checkpoint, restart, ship new records; every record
reaches Loki once (counted as distinct (stream, ts, line)) and nothing is pushed again after."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore

from shipper.checkpoint import FileCheckpointer
from shipper.config import FirestoreSourceConfig, PodsSourceConfig
from shipper.pipeline import Pipeline
from shipper.sources.firestore import FirestoreSource
from shipper.sources.pods import PodSource
from tests import firestore_emulator as emulator_fixtures
from tests import kube_api_stub
from tests.firestore_emulator import PROJECT_ID
from tests.kube_api_stub import KubeApi
from tests.loki_mock import LokiMock
from tests.shipper.test_crash_safety import Crash, CrashingCheckpointer, make_sink

firestore_emulator = emulator_fixtures.firestore_emulator
firestore_client = emulator_fixtures.firestore_client
kube_api = kube_api_stub.kube_api

RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
RECENT_NS = int(time.time() - 7200) * 10**9


def shipped_lines(mock: LokiMock) -> list[str]:
    return sorted(line for _, _, line in mock.distinct())


def run(source: Any, mock: LokiMock, checkpointer: FileCheckpointer) -> Any:
    return Pipeline(source, make_sink(mock), checkpointer, max_entries=5, max_wait_seconds=60).run_once()


@pytest.mark.emulator
def test_firestore_ship_crash_restart_ship_again(firestore_client: firestore.Client, tmp_path: Path) -> None:
    trades = firestore_client.collection("gpt_runner_trades")
    for index in range(17):
        trades.document(f"t{index:02d}").set({"timestamp": RECENT + timedelta(seconds=index), "n": index})
    config = FirestoreSourceConfig(id="firestore", project_id=PROJECT_ID, collections=["gpt_runner_trades"],
                                   page_size=5)

    def source() -> FirestoreSource:
        return FirestoreSource.from_config(config, client=firestore_client)

    mock = LokiMock()
    with pytest.raises(Crash):
        run(source(), mock, CrashingCheckpointer(tmp_path, crash_on_commit=2))
    assert 0 < len(mock.distinct()) < 17
    assert run(source(), mock, FileCheckpointer(tmp_path)).ok
    mock.assert_clean()
    assert sum(push.entry_count for push in mock.requests) > 17  # the unacknowledged batch went twice
    assert len(mock.distinct()) == 17

    trades.document("late").set({"timestamp": RECENT + timedelta(minutes=5), "n": 99})
    pushes_before = len(mock.requests)
    assert run(source(), mock, FileCheckpointer(tmp_path)).accepted == 1
    assert len(mock.distinct()) == 18
    assert {doc for doc in (entry[3].get("doc_id") for entry in mock.entries())} == {
        *(f"t{index:02d}" for index in range(17)), "late"}
    assert run(source(), mock, FileCheckpointer(tmp_path)).accepted == 0
    assert len(mock.requests) == pushes_before + 1


def test_pods_ship_crash_restart_ship_again(kube_api: KubeApi, tmp_path: Path) -> None:
    stub = kube_api.state
    stub.add_pod("bot-1", ["runner", "sidecar"])
    for index in range(12):
        stub.write("bot-1", "runner", RECENT_NS + index * 10**8, f'{{"level":"info","msg":"runner {index}"}}')
        stub.write("bot-1", "sidecar", RECENT_NS + index * 10**8, f"sidecar {index}")

    def source() -> PodSource:
        return PodSource.from_config(PodsSourceConfig(id="pods"), api_client=kube_api.api_client())

    mock = LokiMock()
    with pytest.raises(Crash):
        run(source(), mock, CrashingCheckpointer(tmp_path, crash_on_commit=2))
    assert run(source(), mock, FileCheckpointer(tmp_path)).ok
    mock.assert_clean()
    assert sum(push.entry_count for push in mock.requests) > 24  # the unacknowledged batch went twice
    expected = sorted([f'{{"level":"info","msg":"runner {i}"}}' for i in range(12)]
                      + [f"sidecar {i}" for i in range(12)])
    assert shipped_lines(mock) == expected

    stub.write("bot-1", "sidecar", RECENT_NS + 12 * 10**8, "sidecar 12")
    assert run(source(), mock, FileCheckpointer(tmp_path)).accepted == 1
    assert shipped_lines(mock) == sorted([*expected, "sidecar 12"])
    assert run(source(), mock, FileCheckpointer(tmp_path)).accepted == 0
    streams = {dict(labels)["container"] for labels in mock.streams()}
    assert streams == {"runner", "sidecar"}
