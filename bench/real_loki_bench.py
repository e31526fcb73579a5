"""Gateway and shipper measured against the real Loki binary, side by side in one run (issue 16).

    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/real_loki_bench.py \
        [--requests 200] [--shipper-lines 300000] [--repeats 3] [--profile-shipper]

The bench starts its own Lokis from the project's config (tests/real_loki.py's `start_loki`) and
prints three ratios, each the median of `--repeats` rounds:

1. gateway: `GET /api/monitoring/logs/query_range` for 1,000 lines (gateway cache off) vs the same
   request straight to Loki, p50; Loki runs with the project's limits (ops-stack/loki/loki.yaml).
   Every request of every target asks for a window of its own (start shifted by a second), so no
   answer comes from a cache. The targets are interleaved, so load from elsewhere hits all alike.
   Printed too: Loki asked exactly as the gateway asks it (limit+1, categorized labels), and the
   floor: bench/passthrough_app.py, the gateway's stack (FastAPI, uvicorn, one httpx.AsyncClient)
   passing Loki's answer through as bytes, the cost of the extra hop alone.
2. shipper throughput: `shipper once` (the real command, its own process, start-up included)
   shipping N JSON lines from a GCS emulator (its own process) into a Loki with raised ingest
   limits, vs Loki's own ceiling in the same run: the same number of lines, encoded beforehand
   as protobuf+snappy pushes of 5,000 lines, sent by 4 threads.
3. shipper CPU (user+sys of the whole `shipper once` process, from wait4) vs the CPU Loki spent
   ingesting those same lines (psutil, before/after).

`--profile-shipper` runs one more `shipper once` under py-spy (`pip install py-spy`) and splits
its on-CPU samples into start-up, reading, record building, encoding and the push.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway_overhead import log_line, wait_ready  # noqa: E402

from shipper.models import LogRecord  # noqa: E402
from shipper.sinks.loki.encode import Encoder, group_streams  # noqa: E402
from shipper.sinks.loki.prepare import Preparer  # noqa: E402
from tests.conftest import free_port, stop_process  # noqa: E402
from tests.real_loki import LOKI_VERSION, RealLoki, find_loki_binary, run_id, start_loki  # noqa: E402

NS = 1_000_000_000
LINES_PER_ANSWER = 1000
GATEWAY_STREAMS = 4
WINDOW_S = 40  # ~1,300 matching lines per window at the density below: every answer is a full page
LINES_PER_SECOND_STORED = 36  # matching lines; one more in ten belongs to another service
WARMUP = 20
GATEWAY_CPU = "gateway CPU per request"
FLOOR = "floor: FastAPI + httpx passing Loki's bytes through (limit+1)"
RAISED_LIMITS = (
    "-distributor.ingestion-rate-limit-mb=10000", "-distributor.ingestion-burst-size-mb=20000",
    "-ingester.per-stream-rate-limit=10000MB", "-ingester.per-stream-rate-limit-burst=20000MB",
)
CEILING_BATCH = 5000
CEILING_THREADS = 4
BUCKET_PREFIX = "trades/"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def loki_cpu(loki: RealLoki) -> float:
    times = psutil.Process(loki.process.pid).cpu_times()
    return float(times.user + times.system)


@contextmanager
def loki_running(binary: str, work: Path, name: str, flags: Sequence[str] = ()) -> Iterator[RealLoki]:
    loki = start_loki(binary, work / name, extra_flags=flags)
    try:
        yield loki
    finally:
        loki.stop()


# -------------------------------------------------------------------------------------------------
# 1. gateway query_range vs the same request straight to Loki


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]


def seed_gateway_data(loki: RealLoki, run: str, span_s: int, end_s: int) -> None:
    """`span_s` seconds of trade logs before `end_s` in GATEWAY_STREAMS streams (+ another service)."""
    base = {"source": "gcs", "bucket": run, "prefix": "trades", "level": "info"}
    per_second = LINES_PER_SECOND_STORED * 10 // 9
    total = span_s * per_second
    step_ns = NS // per_second
    start_ns = (end_s - span_s) * NS
    for first in range(0, total, 20_000):
        streams: dict[int, list[tuple[int, str]]] = collections.defaultdict(list)
        for i in range(first, min(total, first + 20_000)):
            shard = i % GATEWAY_STREAMS if i % 10 else GATEWAY_STREAMS
            streams[shard].append((start_ns + i * step_ns, log_line(i, shard)))
        loki.push(
            ({**base, "service_name": "trades" if shard < GATEWAY_STREAMS else "billing",
              "shard": str(shard)}, entries)
            for shard, entries in streams.items()
        )


def gateway_round(loki: RealLoki, requests: int, profile: Path | None = None) -> dict[str, list[float]]:
    run = run_id("gw")
    windows = (WARMUP + requests) * 4 + 10  # one per request of each of the 4 targets
    end_s = int(time.time()) - 5
    span_s = windows + WINDOW_S
    seed_gateway_data(loki, run, span_s, end_s)
    selector = f'{{source="gcs", bucket="{run}", service_name="trades"}}'
    key = secrets.token_urlsafe(32)
    port = free_port()
    env = {**os.environ, "AI_MONITORING_API_KEY": key, "LOKI_URL": loki.url, "CACHE_TTL_SECONDS": "0",
           "RATE_LIMIT": "1000000/minute", "LOG_LEVEL": "WARNING",
           "ANSWER_BUDGET_ON_REST": "false"}  # the same 1,000 lines as Loki's answer: no byte budget
    for name in ("GATEWAY_API_KEYS_FILE", "REDIS_URL"):
        env.pop(name, None)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "gateway.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT)
    floor_port = free_port()
    floor = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "passthrough_app:create_app", "--factory", "--app-dir",
         str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(floor_port), "--log-level", "warning",
         "--no-access-log"], env=env, cwd=ROOT)
    limit = str(LINES_PER_ANSWER)
    targets = [
        Target("direct Loki", f"{loki.url}/loki/api/v1/query_range", {"query": selector, "limit": limit}, {}),
        Target("Loki as the gateway asks it (limit+1, categorized labels)",
               f"{loki.url}/loki/api/v1/query_range",
               {"query": selector, "limit": str(LINES_PER_ANSWER + 1)},
               {"X-Loki-Response-Encoding-Flags": "categorize-labels"}),
        Target(FLOOR, f"http://127.0.0.1:{floor_port}/passthrough/query_range",
               {"query": selector, "limit": str(LINES_PER_ANSWER + 1)}, {}),
        Target("gateway /api/monitoring/logs/query_range",
               f"http://127.0.0.1:{port}/api/monitoring/logs/query_range",
               {"query": selector, "limit": limit}, {"x-api-key": key}),
    ]
    window_start = iter(range(end_s - span_s, end_s - WINDOW_S))
    timings: dict[str, list[float]] = {t.name: [] for t in targets}
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", gateway)
        wait_ready(f"http://127.0.0.1:{floor_port}/health", floor)
        with httpx.Client(timeout=30) as client:
            for n in range(WARMUP + requests):
                for target in targets:
                    start = next(window_start)
                    params = {**target.params, "start": str(start * NS), "end": str((start + WINDOW_S) * NS)}
                    began = time.perf_counter()
                    answer = client.get(target.url, params=params, headers=target.headers)
                    answer.raise_for_status()
                    body = answer.json()
                    elapsed = time.perf_counter() - began
                    got = (sum(len(s["entries"]) for s in body["streams"]) if "streams" in body
                           else sum(len(s["values"]) for s in body["data"]["result"]))
                    if got < LINES_PER_ANSWER:
                        raise SystemExit(f"{target.name}: {got} lines for window {start}, not a full page")
                    if n >= WARMUP:
                        timings[target.name].append(elapsed)
                if n == WARMUP - 1:
                    gateway_cpu = sum(psutil.Process(gateway.pid).cpu_times()[:2])
                if n == WARMUP - 1 and profile is not None:
                    spy = subprocess.Popen([py_spy(), "record", "--pid", str(gateway.pid), "--format", "raw",
                                            "--rate", "500", "--output", str(profile)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)  # py-spy attaches
        timings[GATEWAY_CPU] = [(sum(psutil.Process(gateway.pid).cpu_times()[:2]) - gateway_cpu) / requests]
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            spy.wait(timeout=30)
        stop_process(gateway)
        stop_process(floor)
    return timings


# -------------------------------------------------------------------------------------------------
# 2 + 3. shipper once vs Loki's own ceiling


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


def upload_object(emulator_url: str, bucket_name: str, count: int, base_s: float, work: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = emulator_url
    client = storage.Client(project="bench", credentials=AnonymousCredentials())
    bucket = client.create_bucket(bucket_name)
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


def shipper_round(loki: RealLoki, emulator: subprocess.Popen[bytes], emulator_url: str, count: int,
                  work: Path) -> ShipperRun:
    bucket = run_id("ship")
    upload_object(emulator_url, bucket, count, time.time() - 3000, work)
    env = shipper_env(loki, emulator_url, bucket, work / bucket)
    emulator_process = psutil.Process(emulator.pid)
    emulator_before = sum(emulator_process.cpu_times()[:2])
    loki_before, began = loki_cpu(loki), time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "shipper", "once"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    loki_used = loki_cpu(loki) - loki_before
    process.returncode = os.waitstatus_to_exitcode(status)
    output = process.stdout.read().decode() if process.stdout else ""
    if process.returncode != 0 or f"{count}" not in output.replace(",", ""):
        raise SystemExit(f"shipper once failed ({process.returncode}):\n{output}")
    return ShipperRun(count / wall, usage.ru_utime + usage.ru_stime, loki_used,
                      sum(emulator_process.cpu_times()[:2]) - emulator_before, wall)


# -------------------------------------------------------------------------------------------------
# the shipper's CPU split (py-spy)

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


IDLE_LEAVES = ("Condition.wait", "Runner.run", "select (", "_worker (", "BaseSelectorEventLoop.select")
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


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def top_functions(raw: Path, count: int = 15) -> tuple[int, list[tuple[str, int]]]:
    """(samples, the `count` functions with most self samples) of a py-spy raw profile."""
    functions: collections.Counter[str] = collections.Counter()
    for row in raw.read_text().splitlines():
        stack, _, count_text = row.rpartition(" ")
        leaf = stack.split(";")[-1]
        functions[re.sub(r" \(.*?/(site-packages/|wt-[^/]+/)?", " (", leaf)] += int(count_text)
    return sum(functions.values()), functions.most_common(count)


def profile_shipper(loki: RealLoki, emulator_url: str, count: int, work: Path) -> None:
    bucket = run_id("prof")
    upload_object(emulator_url, bucket, count, time.time() - 3000, work)
    env = shipper_env(loki, emulator_url, bucket, work / bucket)
    out = work / f"{bucket}.txt"
    subprocess.run([py_spy(), "record", "--format", "raw", "--rate", "250", "--output", str(out), "--",
                    sys.executable, "-m", "shipper", "once"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phases: collections.Counter[str] = collections.Counter()
    for row in out.read_text().splitlines():
        stack, _, count_text = row.rpartition(" ")
        phases[classify(stack)] += int(count_text)
    idle = phases.pop(IDLE, 0)
    total = sum(phases.values())
    print(f"shipper once, {count:,} lines, py-spy on-CPU samples ({total} at 250 Hz; {idle} more of "
          f"{IDLE} left out):")
    for name, samples in phases.most_common():
        print(f"  {name:<58} {100 * samples / total:5.1f} %  (~{samples / 250:.2f} s)")
    print("  top functions (self time):")
    for name, samples in top_functions(out, 12)[1]:
        print(f"    {100 * samples / total:5.1f} %  {name}")


# -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per target and round")
    parser.add_argument("--shipper-lines", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each figure is their median")
    parser.add_argument("--profile-shipper", action="store_true", help="split the shipper's CPU (py-spy)")
    parser.add_argument("--profile-gateway", action="store_true", help="one more gateway round under py-spy")
    parser.add_argument("--profile-only", action="store_true", help="with --profile-shipper: no rounds")
    parser.add_argument("--skip-gateway", action="store_true")
    parser.add_argument("--skip-shipper", action="store_true")
    args = parser.parse_args()
    binary = find_loki_binary()
    if binary is None:
        raise SystemExit("no Loki binary: set LOKI_BINARY or put loki on PATH")
    work = Path(tempfile.mkdtemp(prefix="real-loki-bench-"))
    print(f"Loki {LOKI_VERSION} ({binary}), {os.cpu_count()} cores, load average at start {load()}")
    try:
        if not args.skip_gateway:
            run_gateway(binary, work, args)
        if not args.skip_shipper:
            run_shipper(binary, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end {load()}")


def run_gateway(binary: str, work: Path, args: argparse.Namespace) -> None:
    with loki_running(binary, work, "loki-default") as loki:
        rounds = [gateway_round(loki, args.requests) for _ in range(args.repeats)]
        if args.profile_gateway:
            raw = work / "gateway.txt"
            gateway_round(loki, args.requests, raw)
            shutil.copy(raw, Path(tempfile.gettempdir()) / "gateway-py-spy.txt")
            total, top = top_functions(raw, 40)
            top = [(name, n) for name, n in top if not name.startswith(IDLE_LEAVES)][:25]
            print(f"gateway under py-spy ({total} samples at 500 Hz, idle waits left out of the list), "
                  "top self time:")
            for name, samples in top:
                print(f"  {100 * samples / total:5.1f} %  {name}")
    cpu = [r.pop(GATEWAY_CPU)[0] for r in rounds]
    names = list(rounds[0])
    p50 = {name: [percentile(r[name], 50) for r in rounds] for name in names}
    p99 = {name: [percentile(r[name], 99) for r in rounds] for name in names}
    direct, gateway = median(p50[names[0]]), median(p50[names[-1]])
    print(f"\n1. query_range, {LINES_PER_ANSWER} lines, a distinct {WINDOW_S}s window per request, gateway "
          f"cache off, Loki with the project's limits; {args.requests} requests per target and round, "
          f"median of {args.repeats} rounds (per-round p50s in brackets)")
    for name in names:
        rounds_ms = ", ".join(f"{v * 1000:.2f}" for v in p50[name])
        print(f"  {name:<58} p50 {median(p50[name]) * 1000:6.2f} ms [{rounds_ms}]  "
              f"p99 {median(p99[name]) * 1000:6.2f} ms")
    print(f"  gateway process CPU (user+sys) per request: {median(cpu) * 1000:.2f} ms "
          f"[{', '.join(f'{c * 1000:.2f}' for c in cpu)}]")
    floor = median(p50[FLOOR])
    print(f"  gateway over the floor at p50: {(gateway - floor) * 1000:+.2f} ms; the floor over direct: "
          f"{(floor - direct) * 1000:+.2f} ms")
    print(f"  RATIO gateway / direct at p50: {gateway / direct:.2f}x, {(gateway - direct) * 1000:+.2f} ms "
          f"(target <= 1.25x and <= +2.5 ms); load average {load()}")


def run_shipper(binary: str, work: Path, args: argparse.Namespace) -> None:
    count = args.shipper_lines
    port = free_port()
    emulator_url = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port),
         "--in-memory", "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(emulator_url, emulator)
        with loki_running(binary, work, "loki-raised", RAISED_LIMITS) as loki:
            ceilings, runs = [], []
            for _ in range(0 if args.profile_only else args.repeats):
                ceilings.append(ceiling_round(loki, count))
                runs.append(shipper_round(loki, emulator, emulator_url, count, work))
            if args.profile_shipper:
                print()
                profile_shipper(loki, emulator_url, count, work)
    finally:
        stop_process(emulator)
    if args.profile_only:
        return
    ceiling = median([c[0] for c in ceilings])
    rate = median([r.lines_per_s for r in runs])
    cpu = median([r.cpu for r in runs])
    loki_used = median([r.loki_cpu for r in runs])
    print(f"\n2. shipper once, {count:,} JSON lines from the GCS emulator, Loki with raised ingest limits, "
          f"median of {args.repeats} rounds")
    print(f"  Loki's ceiling (pre-encoded protobuf+snappy, {CEILING_BATCH} lines a push, {CEILING_THREADS} "
          f"threads): {ceiling:,.0f} lines/s [{', '.join(f'{c[0]:,.0f}' for c in ceilings)}], "
          f"Loki CPU {median([c[1] for c in ceilings]):.2f} s")
    print(f"  shipper once (whole process, start-up included): {rate:,.0f} lines/s "
          f"[{', '.join(f'{r.lines_per_s:,.0f}' for r in runs)}], "
          f"wall {median([r.wall for r in runs]):.2f} s")
    print(f"  RATIO shipper / ceiling: {rate / ceiling:.2f}x (target >= 0.5x)")
    print(f"\n3. CPU for those {count:,} lines: shipper {cpu:.2f} s "
          f"[{', '.join(f'{r.cpu:.2f}' for r in runs)}], Loki {loki_used:.2f} s "
          f"[{', '.join(f'{r.loki_cpu:.2f}' for r in runs)}], GCS emulator "
          f"{median([r.emulator_cpu for r in runs]):.2f} s")
    print(f"  RATIO shipper CPU / Loki CPU: {cpu / loki_used:.2f}x (target <= 1.2x); load average {load()}")


if __name__ == "__main__":
    main()
