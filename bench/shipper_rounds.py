"""The shipper measures of bench/real_loki_bench.py, one round each: `shipper once` (the real
command, its own process) shipping an object from the GCS emulator into Loki, and Loki's own
ceiling for the same lines pushed pre-encoded."""

from __future__ import annotations

import compileall
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from common import NS, ROOT, free_port, wait_ready

from shipper.models import LogRecord
from shipper.sinks.loki.encode import Encoder, group_streams
from shipper.sinks.loki.prepare import Preparer
from tests.conftest import stop_process
from tests.real_loki import RealLoki, run_id

CEILING_BATCH = 5000
CEILING_THREADS = 4
BUCKET_PREFIX = "trades/"


def loki_cpu(loki: RealLoki) -> float:
    times = psutil.Process(loki.process.pid).cpu_times()
    return float(times.user + times.system)


@contextmanager
def emulator_running() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The GCS emulator in its own process, in memory: the process and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory", "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, emulator)
        yield emulator, url
    finally:
        stop_process(emulator)


def object_lines(count: int, base_s: float) -> Iterator[str]:
    for i in range(count):
        yield json.dumps({
            "timestamp": base_s + i / 1000, "level": "info", "service": "trader",
            "order_id": f"o-{i:09d}", "symbol": "BTC-USD", "side": "buy" if i % 2 else "sell",
            "qty": i % 97, "msg": "order filled at the requested price, no slippage",
        })


def ceiling_bodies(count: int, run: str, base_s: float) -> list[bytes]:
    """The object's lines as the shipper would label them, pre-encoded: protobuf+snappy bodies."""
    preparer, encoder = Preparer(max_age_ns=None), Encoder("protobuf")
    labels = {"source": "gcs", "service_name": "trades", "bucket": run, "prefix": "trades", "level": "info"}
    bodies, chunk = [], []
    for i, line in enumerate(object_lines(count, base_s)):
        chunk.append(LogRecord(ts_ns=int((base_s + i / 1000) * NS), line=line, labels=dict(labels),
                               metadata={"object": "trades/bench.jsonl", "generation": "1",
                                         "line_no": str(i)}))
        if len(chunk) == CEILING_BATCH or i == count - 1:
            entries = preparer.prepare(chunk, now_ns=time.time_ns()).entries
            entries.sort(key=lambda entry: entry.ts_ns)
            bodies.append(encoder.encode(group_streams(entries, in_ts_order=True)))
            chunk = []
    return bodies


def ceiling_round(loki: RealLoki, count: int) -> tuple[float, float]:
    """(lines/s, Loki CPU seconds) for `count` pre-encoded lines pushed by CEILING_THREADS threads."""
    bodies = ceiling_bodies(count, run_id("ceil"), time.time() - 3000)
    headers = Encoder("protobuf").headers
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=CEILING_THREADS)) as client:
        def send(body: bytes) -> None:
            client.post(f"{loki.url}/loki/api/v1/push", content=body, headers=headers).raise_for_status()

        cpu_before, began = loki_cpu(loki), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CEILING_THREADS) as pool:
            list(pool.map(send, bodies))
        elapsed = time.perf_counter() - began
        return count / elapsed, loki_cpu(loki) - cpu_before


@dataclass
class ShipperRun:
    lines_per_s: float
    cpu: float
    loki_cpu: float
    emulator_cpu: float
    wall: float


def emulator_bucket(emulator_url: str, bucket_name: str) -> Any:
    """A new bucket in the GCS emulator (the google-cloud-storage Bucket)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = emulator_url
    return storage.Client(project="bench", credentials=AnonymousCredentials()).create_bucket(bucket_name)


def upload_object(emulator_url: str, bucket_name: str, count: int, base_s: float, work: Path) -> None:
    bucket = emulator_bucket(emulator_url, bucket_name)
    local = work / f"{bucket_name}.jsonl"
    with local.open("w") as handle:
        for line in object_lines(count, base_s):
            handle.write(line + "\n")
    bucket.blob(f"{BUCKET_PREFIX}bench.jsonl", chunk_size=8 << 20).upload_from_filename(str(local))
    local.unlink()


def shipper_env(loki: RealLoki, emulator_url: str, bucket: str, state: Path) -> dict[str, str]:
    env = {**os.environ, "LOKI_URL": loki.url, "GCS_BUCKET_NAME": bucket, "GCS_PREFIXES": BUCKET_PREFIX,
           "SHIPPER_STATE_DIR": str(state), "STORAGE_EMULATOR_HOST": emulator_url, "LOG_LEVEL": "WARNING"}
    for name in ("SHIPPER_CONFIG_FILE", "SHIPPER_STATE_URL", "FIRESTORE_PROJECT_ID", "KUBERNETES_ENABLED",
                 "LOKI_TENANT_ID"):
        env.pop(name, None)
    return env


def compile_checkout(checkout: Path) -> None:
    """Byte-compile `checkout`'s shipper package, as the Docker image does: with
    PYTHONDONTWRITEBYTECODE set (this machine sets it) every start would compile its modules again
    (~60 ms of `shipper once`'s start-up here), which no deployment pays."""
    compileall.compile_dir(str(checkout / "shipper"), quiet=1)


def run_once(env: dict[str, str], checkout: Path = ROOT) -> tuple[str, int, float, float]:
    """`shipper once` of `checkout`'s shipper package in its own process, byte-compiled: (output,
    exit code, wall seconds, CPU seconds from wait4)."""
    compile_checkout(checkout)
    began = time.perf_counter()
    env = {**env, "PYTHONPATH": str(checkout)}
    process = subprocess.Popen([sys.executable, "-m", "shipper", "once"], cwd=checkout, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    output = process.stdout.read().decode() if process.stdout else ""
    return output, os.waitstatus_to_exitcode(status), wall, usage.ru_utime + usage.ru_stime


def shipper_round(loki: RealLoki, emulator: subprocess.Popen[bytes], emulator_url: str, count: int,
                  work: Path) -> ShipperRun:
    bucket = run_id("ship")
    upload_object(emulator_url, bucket, count, time.time() - 3000, work)
    env = shipper_env(loki, emulator_url, bucket, work / bucket)
    emulator_process = psutil.Process(emulator.pid)
    emulator_before = sum(emulator_process.cpu_times()[:2])
    loki_before = loki_cpu(loki)
    output, code, wall, cpu = run_once(env)
    loki_used = loki_cpu(loki) - loki_before
    if code != 0 or f"{count}" not in output.replace(",", ""):
        raise SystemExit(f"shipper once failed ({code}):\n{output}")
    return ShipperRun(count / wall, cpu, loki_used, sum(emulator_process.cpu_times()[:2]) - emulator_before,
                      wall)


def startup_round(loki: RealLoki, emulator_url: str, work: Path) -> tuple[float, float]:
    """(wall, CPU) of `shipper once` over an empty bucket: interpreter, imports, settings, the
    listing and exit - the part of a pass that runs before its first push, while Loki has nothing
    to do."""
    bucket = run_id("empty")
    emulator_bucket(emulator_url, bucket)
    output, code, wall, cpu = run_once(shipper_env(loki, emulator_url, bucket, work / bucket))
    if code != 0:
        raise SystemExit(f"shipper once over an empty bucket failed ({code}):\n{output}")
    return wall, cpu
