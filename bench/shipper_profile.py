"""`--profile-shipper` of bench/real_loki_bench.py: one more `shipper once` under py-spy, its
samples split into start-up, reading, record building, encoding and the push. Only the thread
holding the interpreter lock is sampled (`--gil`): the reader and the push threads take turns
with it, and a thread waiting for it is not working. Native code that lets go of the lock (a
socket's send, snappy on a large buffer) is left out."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT
from pyspy import py_spy, top_functions
from shipper_rounds import compile_checkout, shipper_env, upload_object

from tests.real_loki import RealLoki, run_id

PHASES: list[tuple[str, Callable[[str], bool]]] = [
    ("push (HTTP to Loki)", lambda f: "sinks/loki/client.py" in f and ("httpx" in f or "httpcore" in f)),
    ("encoding (prepare + protobuf + snappy)", lambda f: "sinks/loki/" in f),
    ("reading (GCS download, decompress, split lines)",
     lambda f: "google/" in f or f.startswith("RangedReader") or "sources/gcs/reader.py" in f
     or "urllib3" in f or "requests/" in f or "gzip.py" in f),
    ("record building (parse JSON, timestamps, levels, labels)",
     lambda f: "sources/gcs/" in f or "shipper/records.py" in f or "shipper/models.py" in f),
    ("pipeline (batching, checkpoints)", lambda f: "shipper/pipeline.py" in f or "checkpoint" in f),
]
IDLE = "waiting in a blocking call (py-spy counts it)"
# py-spy's idle detection misses these blocking calls here: samples in them are waits, not CPU
WAIT_LEAVES = ("_worker (", "SyncStream.read (", "SocketIO.readinto (", "Condition.wait (", "Event.wait (",
               "Future.result (", "Thread.join (", "select (")


def classify(stack: str) -> str:
    frames = stack.split(";")
    in_thread = frames[0].startswith("Thread._bootstrap")
    if frames[-1].startswith(WAIT_LEAVES):
        return IDLE
    if not in_thread and not any("shipper/cli.py" in f and "cmd_once" in f for f in frames):
        return "start-up (interpreter, imports, settings) and exit"
    if any("sinks/loki/client.py" in f for f in frames) and any("httpx" in f or "httpcore" in f
                                                               for f in frames):
        return "push (HTTP to Loki)"
    for frame in reversed(frames):  # the innermost project frame decides
        for name, matches in PHASES[1:]:
            if matches(frame):
                return name
    return "other"


def profile_shipper(loki: RealLoki, emulator_url: str, count: int, work: Path) -> None:
    bucket = run_id("prof")
    upload_object(emulator_url, bucket, count, time.time() - 3000, work)
    env = shipper_env(loki, emulator_url, bucket, work / bucket)
    out = work / f"{bucket}.txt"
    compile_checkout(ROOT)
    subprocess.run([py_spy(), "record", "--gil", "--format", "raw", "--rate", "250", "--output", str(out),
                    "--", sys.executable, "-m", "shipper", "once"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phases: collections.Counter[str] = collections.Counter()
    for row in out.read_text().splitlines():
        stack, _, count_text = row.rpartition(" ")
        phases[classify(stack)] += int(count_text)
    idle = phases.pop(IDLE, 0)
    total = sum(phases.values())
    print(f"shipper once, {count:,} lines, py-spy samples of the thread holding the interpreter lock "
          f"({total} at 250 Hz; {idle} more of {IDLE} left out):")
    for name, samples in phases.most_common():
        print(f"  {name:<58} {100 * samples / total:5.1f} %  (~{samples / 250:.2f} s)")
    print("  top functions (self time):")
    for name, samples in top_functions(out, 12)[1]:
        print(f"    {100 * samples / total:5.1f} %  {name}")

