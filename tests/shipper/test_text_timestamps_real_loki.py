"""A plain-text line's leading timestamp is its entry time (issue 19): shipped by the real
`shipper once` from the GCS emulator into the real Loki, a reflections line written 40 minutes
before its object was uploaded sits at its own time, and shipping again from a lost checkpoint
stores nothing twice (the timestamp is deterministic)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.real_loki import REPO, RealLoki, run_id
from tests.shipper.gcs_emulator import GcsEmulator

pytestmark = pytest.mark.emulator

S = 1_000_000_000


def _stamp(ts_ns: int, fraction: str = ".217Z", sep: str = "T") -> str:
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(ts_ns // S)) + fraction


def _ship(
    emulator: GcsEmulator, loki: RealLoki, bucket: str, state: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GCS_", "KUBERNETES_", "SHIPPER_", "LOKI_", "FIRESTORE_"))}
    env |= {"LOKI_URL": loki.url, "GCS_BUCKET_NAME": bucket, "GCS_PREFIXES": "reflections/",
            "STORAGE_EMULATOR_HOST": emulator.url, "SHIPPER_STATE_DIR": str(state),
            "FIRESTORE_COLLECTIONS": "", "LOG_LEVEL": "info"}
    return subprocess.run([sys.executable, "-m", "shipper", "once", "--source", "gcs"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_text_lines_keep_their_leading_time_and_resends_deduplicate(
    emulator: GcsEmulator, real_loki: RealLoki, tmp_path: Path
) -> None:
    bucket = run_id("refl")
    written = (time.time_ns() - 40 * 60 * S) // S * S
    lines = [
        f"{_stamp(written)} INFO: reflection started",
        f"{_stamp(written + S, ',5', ' ')} ERROR OpenAI request timed out",
        time.strftime("%b %e %H:%M:%S", time.gmtime((written + 2 * S) // S)) + " host reflector: done",
        "no time on this line",
    ]
    emulator.bucket(bucket).blob("reflections/run.log").upload_from_string("\n".join(lines) + "\n")

    first = _ship(emulator, real_loki, bucket, tmp_path / "state-1")
    assert first.returncode == 0, first.stdout + first.stderr
    again = _ship(emulator, real_loki, bucket, tmp_path / "state-2")  # a lost checkpoint: all resent
    assert again.returncode == 0, again.stdout + again.stderr

    now = time.time_ns()
    data = real_loki.query_range(f'{{bucket="{bucket}"}}', start_ns=now - 3600 * S, end_ns=now + 60 * S)
    held = sorted((int(ts), line) for stream in data["result"] for ts, line, *_ in stream["values"])
    assert [line for _, line in held] == lines  # each once, in their own time order
    assert [ts for ts, _ in held[:3]] == [written + 217_000_000, written + S + 500_000_000, written + 2 * S]
    assert held[3][0] > now - 5 * 60 * S  # no time of its own: the object's upload time
