"""A pass that could not store every record says so: `shipper once` exits 3 and prints PARTIAL with
the reasons, `shipper run` counts shipper_runs_total{outcome="partial"} and logs it; never "ok".
Real processes, the real Loki and the Firestore emulator."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from google.cloud import firestore

from shipper.cli import EXIT_OK, EXIT_PARTIAL
from tests import firestore_emulator as emulator_fixtures
from tests.conftest import free_port
from tests.firestore_emulator import PROJECT_ID, FirestoreEmulator
from tests.real_loki import REPO, RealLoki, run_id

firestore_emulator = emulator_fixtures.firestore_emulator
firestore_client = emulator_fixtures.firestore_client

pytestmark = pytest.mark.emulator

S = 1_000_000_000


@pytest.fixture
def collection(firestore_client: firestore.Client) -> str:
    """Three documents Loki takes, one older than it accepts (8 days) and one whose timestamp is no time."""
    name = run_id("outcome")
    docs = firestore_client.collection(name)
    now = datetime.now(UTC)
    for i in range(3):
        docs.document(f"fine-{i}").set({"timestamp": now - timedelta(seconds=i), "key": f"fine-{i}"})
    docs.document("ancient").set({"timestamp": now - timedelta(days=8), "key": "ancient"})
    docs.document("garbled").set({"timestamp": "not a time", "key": "garbled"})
    return name


def _env(emulator: FirestoreEmulator, loki: RealLoki, collection: str, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GCS_", "KUBERNETES_", "SHIPPER_", "LOKI_", "FIRESTORE_"))}
    return {**env, "LOKI_URL": loki.url, "FIRESTORE_PROJECT_ID": PROJECT_ID,
            "FIRESTORE_COLLECTIONS": collection, "FIRESTORE_EMULATOR_HOST": emulator.host,
            "SHIPPER_STATE_DIR": str(state), "LOG_LEVEL": "info"}


def _held(loki: RealLoki, collection: str) -> list[str]:
    now = time.time_ns()
    lines = loki.all_lines(f'{{collection="{collection}"}}', start_ns=now - 3600 * S, end_ns=now + 60 * S)
    return sorted(json.loads(line)["key"] for line in lines)


def test_once_exits_3_and_names_what_was_not_stored(
    firestore_emulator: FirestoreEmulator, real_loki: RealLoki, collection: str, tmp_path: Path
) -> None:
    env = _env(firestore_emulator, real_loki, collection, tmp_path / "state")
    command = [sys.executable, "-m", "shipper", "once"]

    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)

    assert first.returncode == EXIT_PARTIAL == 3, first.stdout + first.stderr
    assert "firestore: PARTIAL (some records could not be stored); shipped 3, rejected 1 (too_old=1), " \
           "skipped 1 (bad_timestamp=1)" in first.stdout
    assert "ok;" not in first.stdout
    assert _held(real_loki, collection) == ["fine-0", "fine-1", "fine-2"]

    again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert "firestore: ok; shipped 0, rejected 0" in again.stdout


def test_help_names_the_exit_codes() -> None:
    shown = subprocess.run([sys.executable, "-m", "shipper", "once", "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=60).stdout
    assert "3 finished, but some records could not be stored" in " ".join(shown.split())


@pytest.fixture
def shipper_run(firestore_emulator: FirestoreEmulator, real_loki: RealLoki, collection: str,
                tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    env = {**_env(firestore_emulator, real_loki, collection, tmp_path / "state"),
           "SHIPPER_METRICS_PORT": str(port), "SHIPPER_METRICS_HOST": "127.0.0.1",
           "SHIPPER_INTERVAL_SECONDS": "3600"}
    process = subprocess.Popen([sys.executable, "-m", "shipper", "run"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process, f"http://127.0.0.1:{port}/metrics"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_run_counts_a_partial_pass_and_logs_it(
    shipper_run: tuple[subprocess.Popen[str], str], real_loki: RealLoki, collection: str
) -> None:
    process, metrics_url = shipper_run
    partial = 'shipper_runs_total{outcome="partial",source="firestore"} 1.0'
    text = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and partial not in text:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(metrics_url, timeout=2).text
        time.sleep(0.5)
    assert partial in text
    assert 'shipper_runs_total{outcome="success",source="firestore"}' not in text
    assert _held(real_loki, collection) == ["fine-0", "fine-1", "fine-2"]
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    passes = [json.loads(line) for line in output.splitlines()
              if line.startswith("{") and '"source_pass"' in line]
    assert [(p["outcome"], p["rejected"], p["skipped"]) for p in passes] == [
        ("partial", {"too_old": 1}, {"bad_timestamp": 1})
    ]
