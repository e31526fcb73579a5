"""One round of the gateway measure of bench/real_loki_bench.py: 1,000-line query_range answers
through the gateway, straight from Loki (as asked directly and as the gateway asks it) and through
the pass-through floor, each request on a window of its own, the targets interleaved."""

from __future__ import annotations

import collections
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from common import NS, ROOT, Target, wait_ready
from loki_stand_in import log_line
from pyspy import py_spy

from tests.conftest import free_port, stop_process
from tests.real_loki import RealLoki, run_id

LINES_PER_ANSWER = 1000
GATEWAY_STREAMS = 4
WINDOW_S = 40  # ~1,300 matching lines per window at the density below: every answer is a full page
LINES_PER_SECOND_STORED = 36  # matching lines; one more in ten belongs to another service
WARMUP = 20
GATEWAY_CPU = "gateway CPU per request"
FLOOR = "floor: FastAPI + httpx/aiohttp passing Loki's bytes on (limit+1)"


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


def trades_selector(run: str) -> str:
    """The stream selector of the trades seed_gateway_data() stored for `run`."""
    return f'{{source="gcs", bucket="{run}", service_name="trades"}}'


def gateway_round(loki: RealLoki, requests: int, profile: Path | None = None) -> dict[str, list[float]]:
    run = run_id("gw")
    windows = (WARMUP + requests) * 4 + 10  # one per request of each of the 4 targets
    end_s = int(time.time()) - 5
    span_s = windows + WINDOW_S
    seed_gateway_data(loki, run, span_s, end_s)
    selector = trades_selector(run)
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
