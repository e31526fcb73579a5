"""Shipper throughput: N JSON lines (~200 bytes each) in one object of the GCS emulator -> GcsSource
-> Pipeline -> LokiSink (protobuf + snappy) -> a local HTTP push endpoint that answers 204.

The emulator and the push endpoint run as separate processes, so the peak RSS printed is the
shipper's own. Prints, each labelled:

- wall-clock lines/s and MB/s (object bytes per second), end to end: this includes waiting for
  the Python GCS emulator and the push endpoint, which share the machine's cores with the shipper;
- lines per CPU-second of the shipper process (user + system time of all its threads: reading,
  parsing, encoding and pushing), the "encode+push on one core" figure of the target, with the
  CPU seconds the emulator and the push endpoint used alongside;
- the shipper's peak RSS.

    .venv/bin/python bench/shipper_throughput.py [--lines 1000000] [--format jsonl|text] [--gzip]

Targets (issue 2): >= 100,000 lines/s on one core, RSS < 150 MB for a 1 GiB object
(`--lines 5400000` makes a ~1.08 GB object).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shipper.checkpoint import FileCheckpointer  # noqa: E402
from shipper.config import GcsSourceConfig, ShipperSettings  # noqa: E402
from shipper.models import LogRecord  # noqa: E402
from shipper.pipeline import PassResult, Pipeline  # noqa: E402
from shipper.sinks import PushResult, Sink  # noqa: E402
from shipper.sinks.loki.client import LokiSink  # noqa: E402
from shipper.sources.gcs import GcsSource  # noqa: E402
from tests.conftest import free_port, stop_process  # noqa: E402

BUCKET = "bench"
OBJECT = "trades/bench.jsonl"
READY_TIMEOUT_SECONDS = 30
TARGET_LINES_PER_SECOND = 100_000
TARGET_RSS_MB = 150


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {READY_TIMEOUT_SECONDS}s")


@contextmanager
def background(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        wait_for_port(port, process)
        yield process
    finally:
        stop_process(process, kill_timeout=10)


def write_lines(path: Path, count: int, fmt: str, compress: bool) -> int:
    """Write the object to a local file without holding it in memory; returns decompressed bytes."""
    opener = gzip.open if compress else open
    written = 0
    base = int(time.time()) - 3600
    with opener(path, "wb") as handle:
        for i in range(count):
            if fmt == "jsonl":
                line = json.dumps({
                    "timestamp": base + i / 1000, "level": "info", "service": "trader",
                    "order_id": f"o-{i:09d}", "symbol": "BTC-USD", "side": "buy" if i % 2 else "sell",
                    "qty": i % 97, "msg": "order filled at the requested price, no slippage",
                }) + "\n"
            else:
                line = f"INFO order o-{i:09d} filled: symbol=BTC-USD side=buy qty={i % 97:02d} {'x' * 130}\n"
            data = line.encode()
            handle.write(data)
            written += len(data)
    return written


class NullSink:
    def push(self, records: Sequence[LogRecord], *, source: str) -> PushResult:
        return PushResult(accepted=len(records), accepted_bytes=sum(len(r.line) for r in records))


def profiled(pipeline: Pipeline) -> PassResult:
    import cProfile
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(pipeline.run_once)
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--format", choices=("jsonl", "text"), default="jsonl")
    parser.add_argument("--gzip", action="store_true", help="store the object gzip-compressed")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    parser.add_argument("--null-sink", action="store_true",
                        help="accept records without encoding or sending them: the source's share alone")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="shipper-bench-"))
    gcs_port, loki_port = free_port(), free_port()
    try:
        emulator = [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
                    "--port", str(gcs_port), "--in-memory", "--quiet"]
        loki = [sys.executable, "-m", "tests.loki_mock", "--port", str(loki_port), "--accept-only"]
        with background(emulator, gcs_port) as emulator_process, background(loki, loki_port) as loki_process:
            os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{gcs_port}"
            client = storage.Client(project="bench", credentials=AnonymousCredentials())
            bucket = client.create_bucket(BUCKET)
            local = work / "object"
            raw_bytes = write_lines(local, args.lines, args.format, args.gzip)
            name = OBJECT + (".gz" if args.gzip else "")
            bucket.blob(name, chunk_size=8 << 20).upload_from_filename(str(local))
            stored_bytes = local.stat().st_size
            local.unlink()

            settings = ShipperSettings(loki_url=f"http://127.0.0.1:{loki_port}")
            config = GcsSourceConfig(id="bench", bucket=BUCKET, prefixes=["trades/"])
            source = GcsSource(config, client)
            rss_before = psutil.Process().memory_info().rss
            with httpx.Client(timeout=30) as http:
                sink: Sink = NullSink() if args.null_sink else LokiSink.from_settings(settings, client=http)
                pipeline = Pipeline(
                    source, sink, FileCheckpointer(work / "state"), max_entries=settings.batch_max_entries,
                    max_bytes=settings.batch_max_bytes, max_wait_seconds=settings.batch_max_wait_seconds,
                )
                helpers = [psutil.Process(emulator_process.pid), psutil.Process(loki_process.pid)]
                helpers_before = [cpu_seconds(helper) for helper in helpers]
                load = os.getloadavg()[0]
                started = time.perf_counter()
                cpu_started = shipper_cpu_seconds()
                result = pipeline.run_once() if not args.profile else profiled(pipeline)
                elapsed = time.perf_counter() - started
                cpu = shipper_cpu_seconds() - cpu_started
                emulator_cpu, loki_cpu = (
                    cpu_seconds(helper) - before
                    for helper, before in zip(helpers, helpers_before, strict=True)
                )
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if not result.ok or result.accepted != args.lines:
        raise SystemExit(f"bench run failed: ok={result.ok} accepted={result.accepted} error={result.error}")
    sink_name = "null sink (source only)" if args.null_sink else "LokiSink protobuf+snappy over HTTP"
    wall_rate = result.accepted / elapsed
    cpu_rate = result.accepted / cpu
    peak_mb = peak_kb / 1024
    print(f"lines shipped      {result.accepted:,} ({args.format}{', gzip' if args.gzip else ''}) "
          f"-> {sink_name}, {result.pushes} pushes")
    print(f"object size        {stored_bytes / 1e6:.1f} MB stored, {raw_bytes / 1e6:.1f} MB of lines")
    print(f"wall clock         {elapsed:.2f} s: {wall_rate:,.0f} lines/s, "
          f"{raw_bytes / elapsed / 1e6:.1f} MB/s end to end (emulator and push endpoint share the "
          f"{os.cpu_count()} cores; load average {load:.2f} at start)")
    print(f"shipper CPU        {cpu:.2f} s (user+system, all threads): {cpu_rate:,.0f} lines per CPU-second, "
          f"{raw_bytes / cpu / 1e6:.1f} MB per CPU-second")
    print(f"other processes    GCS emulator {emulator_cpu:.2f} s CPU, push endpoint {loki_cpu:.2f} s CPU")
    print(f"peak RSS           {peak_mb:.1f} MB (shipper process lifetime; just before the run: "
          f"{rss_before / 2**20:.1f} MB)")
    checks = (
        ("wall", wall_rate >= TARGET_LINES_PER_SECOND),
        ("shipper CPU", cpu_rate >= TARGET_LINES_PER_SECOND),
        ("RSS", peak_mb < TARGET_RSS_MB),
    )
    verdict = "; ".join(f"{name} {'OK' if ok else 'MISSED'}" for name, ok in checks)
    print(f"target (issue 2)   >= {TARGET_LINES_PER_SECOND:,} lines/s, RSS < {TARGET_RSS_MB} MB: {verdict}")


def shipper_cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the read-ahead thread included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)

if __name__ == "__main__":
    main()
