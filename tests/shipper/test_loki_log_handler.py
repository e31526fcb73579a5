"""LOG_TO_LOKI: the processes' own logs in the real Loki, and a logger that never stalls on Loki."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper.loki_log_handler import BoundedLokiQueueHandler
from tests.conftest import free_port, stop_process
from tests.real_loki import RealLoki, run_id

WAIT_SECONDS = 15.0


Found = list[tuple[dict[str, str], int, str]]


def _wait_for_lines(loki: RealLoki, query: str, start_ns: int, expected: int) -> Found:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        data = loki.query_range(query, start_ns=start_ns, end_ns=time.time_ns() + 10**9)
        found = [(s["stream"], int(ts), line) for s in data["result"] for ts, line, *_ in s["values"]]
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_records_land_with_design_labels_and_their_own_time(real_loki: RealLoki) -> None:
    rid = run_id()
    logger = logging.getLogger(f"test.loki_handler.{rid}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = BoundedLokiQueueHandler(loki_url=real_loki.url, source="shipper", service_name="shipper")
    logger.addHandler(handler)
    started = time.time_ns()
    try:
        logger.warning("pass failed for %s", rid, extra={"source_id": "gcs"})
        logger.info("pass ok for %s", rid)
        created = time.time_ns()
    finally:
        logger.removeHandler(handler)
        handler.close()
    found = _wait_for_lines(real_loki, f'{{source="shipper"}} |= "{rid}"', started - 10**9, 2)
    assert sorted(labels["level"] for labels, _, _ in found) == ["info", "warn"]
    for labels, ts, line in found:
        assert labels == {"source": "shipper", "service_name": "shipper", "level": labels["level"]}
        assert started <= ts <= created  # the record's time, not the time of sending
        assert json.loads(line)["logger"] == logger.name
    warn_line = next(json.loads(line) for labels, _, line in found if labels["level"] == "warn")
    assert warn_line["message"] == f"pass failed for {rid}" and warn_line["source_id"] == "gcs"


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts connections and never answers: the worst Loki outage for a client."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(100)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_dead_loki_never_blocks_logging_and_drops_are_counted(blackhole: str) -> None:
    logger = logging.getLogger("test.loki_handler.blackhole")
    logger.propagate = False
    handler = BoundedLokiQueueHandler(
        loki_url=blackhole, source="shipper", service_name="shipper", max_queued=100, stop_timeout=0.5
    )
    logger.addHandler(handler)
    started = time.monotonic()
    for i in range(5_000):
        logger.error("record %d", i)
    logged_in = time.monotonic() - started
    logger.removeHandler(handler)
    closing = time.monotonic()
    handler.close()
    closed_in = time.monotonic() - closing
    assert logged_in < 2.0, f"5,000 records took {logged_in:.2f}s with Loki hanging"
    assert handler.dropped >= 5_000 - 100 - 1  # at most the queue and the one in flight were kept
    assert closed_in < 1.5, f"close took {closed_in:.2f}s"


@pytest.mark.parametrize("program", ["gateway", "shipper"])
def test_log_to_loki_ships_the_process_logs(real_loki: RealLoki, program: str, tmp_path: Path) -> None:
    port = free_port()  # both name their port in a start-up line: that tells this run's line from others'
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GCS_", "FIRESTORE_", "KUBERNETES_"))},
        "LOKI_URL": real_loki.url, "LOG_TO_LOKI": "true", "LOG_LEVEL": "info",
        "AI_MONITORING_API_KEY": secrets.token_urlsafe(32), "SHIPPER_STATE_DIR": str(tmp_path),
        "SHIPPER_METRICS_PORT": str(port), "SHIPPER_INTERVAL_SECONDS": "3600",
        "GCS_BUCKET_NAME": "bucket", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
    }
    command = ["gateway.cli", "serve", "--port", str(port)] if program == "gateway" else ["shipper", "run"]
    marker = f"127.0.0.1:{port}" if program == "gateway" else f"metrics on :{port}"
    started = time.time_ns()
    process = subprocess.Popen([sys.executable, "-m", *command], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        found = _wait_for_lines(real_loki, f'{{source="{program}"}} |= "{marker}"', started, 1)
    finally:
        stop_process(process)
    assert found, f"{program}'s start-up line did not reach Loki"
    labels, _, line = found[0]
    assert labels == {"source": program, "service_name": program, "level": "info"}
    assert json.loads(line)["level"] == "info"
