"""Gateway overhead: p50/p99 of the same 1,000-line query_range answered directly by a local Loki
stand-in and through the gateway (uvicorn, real HTTP on 127.0.0.1). Target: <= 1.15x at p50.

    .venv/bin/python bench/gateway_overhead.py [--requests 300] [--lines 1000] [--loki-latency-ms 25]

The stand-in is a small real HTTP server (its own process) that runs a real query_range over the
lines it stores: it parses the selector, keeps the streams whose labels match, takes the entries
in [start, end), the first `limit` of them in `direction` across streams, each stream ordered in
that direction, and encodes the answer with Loki's JSON (status/data/resultType/result/stats) per
request. It stores more lines than one answer holds, so a 1,000-line query is a full page with
more to follow (the gateway says truncated and hands out a cursor). One line in 50 mentions a
token (the redactor looks closer), one in 100 holds a bearer token (it masks that). Its own work
per answer is printed.

Both sides ask for the same window and limit; the gateway asks Loki for limit+1 (that is how it
knows the answer is truncated). Every client decodes the JSON it gets.

The floor (bench/passthrough_app.py) is the gateway's stack, FastAPI under uvicorn with one shared
httpx.AsyncClient, passing the stand-in's answer through as bytes (for limit+1, like the gateway):
the cost of the extra hop alone. The gateway's figure over the floor is what its own work costs.

The gateway runs with its response cache off, redaction on (the default), one uvicorn worker,
access log off.

Zero-latency figures are always measured and printed. `--loki-latency-ms` adds runs in which the
stand-in sleeps that long before each answer, standing in for the time a real Loki spends on a
query; those runs are labelled as simulated."""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

import httpx
from common import Target, free_port, percentile, wait_ready
from loki_stand_in import LATENCY_PATH, STAND_IN_WORK_HEADER, STREAMS, WINDOW_NS

SELECTOR = '{source="gcs", service_name="trades"}'
WARMUP_REQUESTS = 30
REQUEST_TIMEOUT_SECONDS = 10.0
FLOOR_NAME = "floor: FastAPI + httpx pass-through"
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
STAND_IN = os.path.join(BENCH_DIR, "loki_stand_in.py")


def timed_get(client: httpx.Client, target: Target, work: list[float]) -> float:
    started = time.perf_counter()
    answer = client.get(target.url, params=target.params, headers=target.headers)
    answer.raise_for_status()
    answer.json()  # a client uses the answer; every side pays the decode
    elapsed = time.perf_counter() - started
    if STAND_IN_WORK_HEADER in answer.headers:
        work.append(float(answer.headers[STAND_IN_WORK_HEADER]))
    return elapsed


def measure_interleaved(
    client: httpx.Client, targets: list[Target], n: int
) -> tuple[list[list[float]], list[float]]:
    """Alternate between the targets so load from elsewhere on the machine hits all alike."""
    work: list[float] = []
    for _ in range(WARMUP_REQUESTS):
        for target in targets:
            timed_get(client, target, [])
    timings: list[list[float]] = [[] for _ in targets]
    for _ in range(n):
        for i, target in enumerate(targets):
            timings[i].append(timed_get(client, target, work))
    return timings, work


def report(targets: list[Target], timings: list[list[float]]) -> None:
    d50, d99 = percentile(timings[0], 50), percentile(timings[0], 99)
    width = max(len(t.name) for t in targets)
    print(f"  {targets[0].name:<{width}} : p50 {d50 * 1000:7.2f} ms   p99 {d99 * 1000:7.2f} ms")
    for target, values in zip(targets[1:], timings[1:], strict=True):
        g50, g99 = percentile(values, 50), percentile(values, 99)
        print(
            f"  {target.name:<{width}} : p50 {g50 * 1000:7.2f} ms   p99 {g99 * 1000:7.2f} ms   "
            f"ratio p50 {g50 / d50:5.2f}x  p99 {g99 / d99:5.2f}x   overhead p50 {(g50 - d50) * 1000:+.2f} ms"
        )
    f50 = percentile(timings[1], 50)
    for target, values in zip(targets[2:], timings[2:], strict=True):
        print(f"  {target.name}: {(percentile(values, 50) - f50) * 1000:+.2f} ms at p50 over the floor")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--lines", type=int, default=1000, help="lines per answer (the query's limit)")
    parser.add_argument("--stored-lines", type=int, default=0, help="lines the stand-in stores (default 5x)")
    parser.add_argument(
        "--loki-latency-ms",
        type=float,
        nargs="*",
        default=[],
        help="also measure with the stand-in sleeping this long per query (SIMULATED Loki query time)",
    )
    parser.add_argument("--http", default="auto", help="uvicorn HTTP implementation: auto, h11, httptools")
    parser.add_argument("--loop", default="auto", help="uvicorn event loop: auto, asyncio, uvloop")
    parser.add_argument("--app", default="gateway.main:create_app", help="uvicorn app factory to run")
    args = parser.parse_args()
    stored = args.stored_lines or 5 * args.lines

    loki_port, gateway_port, floor_port = free_port(), free_port(), free_port()
    key = secrets.token_urlsafe(32)
    end_ns = time.time_ns()
    start_ns = end_ns - WINDOW_NS
    env = {
        **os.environ,
        "AI_MONITORING_API_KEY": key,
        "LOKI_URL": f"http://127.0.0.1:{loki_port}",
        "CACHE_TTL_SECONDS": "0",
        "RATE_LIMIT": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        "ANSWER_BUDGET_ON_REST": "false",  # the same 1,000 lines as the stand-in: no byte budget
    }
    env.pop("GATEWAY_API_KEYS_FILE", None)
    env.pop("REDIS_URL", None)
    stand_in = [sys.executable, STAND_IN, "--port", str(loki_port), "--end-ns", str(end_ns)]
    stand_in += ["--stored-lines", str(stored)]
    server = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    server += ["--http", args.http, "--loop", args.loop]
    gateway = [sys.executable, "-m", "uvicorn", args.app, "--factory", "--port", str(gateway_port), *server]
    floor = [sys.executable, "-m", "uvicorn", "passthrough_app:create_app", "--factory"]
    floor += ["--app-dir", BENCH_DIR, "--port", str(floor_port), *server]
    processes = [subprocess.Popen(command, env=env) for command in (stand_in, gateway, floor)]
    loki = f"http://127.0.0.1:{loki_port}"
    through = f"http://127.0.0.1:{gateway_port}"
    passthrough = f"http://127.0.0.1:{floor_port}"
    window = {"start": str(start_ns), "end": str(end_ns), "limit": str(args.lines)}
    auth = {"x-api-key": key}
    targets = [
        Target(
            "direct Loki query_range",
            f"{loki}/loki/api/v1/query_range",
            {"query": SELECTOR, **window},
            {},
        ),
        Target(
            FLOOR_NAME,
            f"{passthrough}/passthrough/query_range",
            {"query": SELECTOR, **window, "limit": str(args.lines + 1)},
            {},
        ),
        Target(
            "gateway /api/monitoring/logs/query_range",
            f"{through}/api/monitoring/logs/query_range",
            {"query": SELECTOR, **window},
            auth,
        ),
        Target(
            "gateway /logs/gcs",
            f"{through}/logs/gcs",
            {"service": "trades", "since": str(start_ns), "until": str(end_ns), "limit": str(args.lines)},
            auth,
        ),
    ]
    phases = [0.0] + [ms for ms in args.loki_latency_ms if ms > 0]
    results = []
    try:
        wait_ready(f"{loki}/ready")
        wait_ready(f"{through}/health")
        wait_ready(f"{passthrough}/health")
        with httpx.Client(timeout=httpx.Timeout(REQUEST_TIMEOUT_SECONDS)) as client:
            direct = client.get(targets[0].url, params=targets[0].params).json()
            samples = [client.get(t.url, params=t.params, headers=t.headers).json() for t in targets[2:]]
            for ms in phases:
                client.get(f"{loki}{LATENCY_PATH}", params={"ms": str(ms)}).raise_for_status()
                results.append((ms, *measure_interleaved(client, targets, args.requests)))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    direct_lines = sorted(v[1] for s in direct["data"]["result"] for v in s["values"])
    print(
        f"stand-in Loki: {stored} stored lines in the last hour, {STREAMS} of its streams match "
        f"{SELECTOR}; direct answer: {len(direct_lines)} lines"
    )
    for target, sample in zip(targets[2:], samples, strict=True):
        lines = sorted(e[1] for s in sample["streams"] for e in s["entries"])
        masked = sum("[REDACTED" in line for line in lines)
        same = [line for line in lines if "[REDACTED" not in line]
        if len(lines) != len(direct_lines) or not set(same) <= set(direct_lines):
            raise SystemExit(f"{target.name} did not answer the same lines as the direct query")
        print(
            f"{target.name}: the same {len(lines)} lines ({masked} redacted), "
            f"truncated={sample['truncated']}, next_cursor={'yes' if sample['next_cursor'] else 'no'}"
        )
    print(
        f"requests per target and run: {args.requests} (interleaved, after {WARMUP_REQUESTS} warm-up), "
        f"uvicorn {args.app} --http {args.http} --loop {args.loop}"
    )
    for ms, timings, work in results:
        label = "no simulated latency" if not ms else f"SIMULATED Loki query time: +{ms:g} ms sleep per query"
        print(f"{label} (stand-in's own work per answer: p50 {statistics.median(work) * 1000:.2f} ms)")
        report(targets, timings)
    print("target: gateway <= 1.15x direct at p50")


if __name__ == "__main__":
    main()
