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
import bisect
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

SELECTOR = '{source="gcs", service_name="trades"}'
STREAMS = 4  # streams the selector matches; one more stream (another service) it does not
WINDOW_NS = 3_600 * 10**9
READY_TIMEOUT_SECONDS = 30.0
WARMUP_REQUESTS = 30
REQUEST_TIMEOUT_SECONDS = 10.0
STAND_IN_WORK_HEADER = "X-Stand-In-Work-Seconds"
LATENCY_PATH = "/bench/latency"
FLOOR_NAME = "floor: FastAPI + httpx pass-through"
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\]*)"\s*(?:,|$)')


# ---------------------------------------------------------------------------------------------
# the Loki stand-in


def log_line(i: int, shard: int) -> str:
    """Trade logs; one line in 50 mentions a session token (the redactor looks closer), one in
    100 carries a bearer token (masked)."""
    if i % 100 == 37:
        return (
            f'{{"level":"warn","msg":"upstream call failed","shard":{shard},'
            f'"authorization":"Bearer {secrets.token_hex(16)}","attempt":{i % 3}}}'
        )
    if i % 50 == 13:
        return (
            f'{{"level":"info","msg":"refreshed the session token","user":"u{i % 997:03d}",'
            f'"shard":{shard}}}'
        )
    return (
        f'{{"ts":"2024-05-01T12:00:{i % 60:02d}Z","level":"info","msg":"trade executed",'
        f'"symbol":"AAPL","qty":{i},"price":123.45,"order_id":"ord-{i:06d}","stream":{shard}}}'
    )


@dataclass
class StoredStream:
    labels: dict[str, str]
    labels_json: bytes
    ts: list[int]  # ascending
    values_json: list[bytes]  # ["<ts>","<line>"] per entry, encoded once
    line_bytes: list[int]  # running total of line sizes, for stats


def build_store(stored_lines: int, end_ns: int) -> list[StoredStream]:
    """`stored_lines` entries spread over the hour before `end_ns` (distinct timestamps), dealt
    round-robin to the streams the selector matches, plus a stream of another service."""
    base = {"source": "gcs", "bucket": "prod", "prefix": "trades", "level": "info"}
    labels = [{**base, "service_name": "trades", "shard": str(s)} for s in range(STREAMS)]
    labels.append({**base, "service_name": "billing", "shard": "0"})
    store = [StoredStream(lab, json.dumps(lab).encode(), [], [], [0]) for lab in labels]
    step = WINDOW_NS // stored_lines
    start = end_ns - WINDOW_NS
    for i in range(stored_lines):
        ts = start + i * step + secrets.randbelow(step // 2)
        shard = i % STREAMS if i % 10 else STREAMS  # one line in ten is the other service's
        stream = store[shard]
        line = log_line(i, shard)
        stream.ts.append(ts)
        stream.values_json.append(json.dumps([str(ts), line]).encode())
        stream.line_bytes.append(stream.line_bytes[-1] + len(line.encode()))
    return store


def parse_selector(query: str) -> list[tuple[str, str]]:
    """`{a="b", c="d"}` (equality matchers, plain values): what the bench sends. Loki would
    accept more; anything else here is a bench bug, answered 400 like a Loki parse error."""
    query = query.strip()
    if not (query.startswith("{") and query.endswith("}")):
        raise ValueError(f"parse error: unsupported query {query!r}")
    inner, pos, matchers = query[1:-1], 0, []
    while pos < len(inner):
        match = _MATCHER.match(inner, pos)
        if not match:
            raise ValueError(f"parse error at {inner[pos:]!r}")
        matchers.append((match.group(1), match.group(2)))
        pos = match.end()
    if not matchers:
        raise ValueError("parse error: empty selector")
    return matchers


def query_range(store: list[StoredStream], params: dict[str, list[str]]) -> bytes:
    """Loki's /loki/api/v1/query_range for a log selector, from the store."""
    started = time.perf_counter()
    matchers = parse_selector(params["query"][0])
    start, end = int(params["start"][0]), int(params["end"][0])
    limit = int(params.get("limit", ["100"])[0])
    direction = params.get("direction", ["backward"])[0]
    if direction not in ("forward", "backward") or limit < 1 or start >= end:
        raise ValueError("invalid direction, limit or range")
    forward = direction == "forward"
    selected = [s for s in store if all(s.labels.get(k) == v for k, v in matchers)]
    windows = [(bisect.bisect_left(s.ts, start), bisect.bisect_left(s.ts, end)) for s in selected]
    # the first `limit` entries across streams: each stream offers its first `limit` in the
    # direction, the limit-th of all offers is the last one taken (timestamps are distinct)
    offers = []
    for s, (lo, hi) in zip(selected, windows, strict=True):
        offers += s.ts[lo : min(hi, lo + limit)] if forward else s.ts[max(lo, hi - limit) : hi]
    offers.sort(reverse=not forward)
    last = offers[limit - 1] if len(offers) > limit else None
    result, returned = [], 0
    for s, (lo, hi) in zip(selected, windows, strict=True):
        if last is not None:
            if forward:
                hi = bisect.bisect_right(s.ts, last, lo, hi)
            else:
                lo = bisect.bisect_left(s.ts, last, lo, hi)
        values = s.values_json[lo:hi] if forward else s.values_json[lo:hi][::-1]
        returned += len(values)
        if values:
            result.append(b'{"stream":' + s.labels_json + b',"values":[' + b",".join(values) + b"]}")
    lines = sum(hi - lo for lo, hi in windows)
    scanned = sum(s.line_bytes[hi] - s.line_bytes[lo] for s, (lo, hi) in zip(selected, windows, strict=True))
    exec_time = time.perf_counter() - started
    stats = {  # the shape of Loki 3's stats, abridged
        "summary": {
            "bytesProcessedPerSecond": int(scanned / max(exec_time, 1e-6)),
            "linesProcessedPerSecond": int(lines / max(exec_time, 1e-6)),
            "totalBytesProcessed": scanned,
            "totalLinesProcessed": lines,
            "execTime": exec_time,
            "queueTime": 0.0001,
            "subqueries": 0,
            "totalEntriesReturned": returned,
            "splits": 1,
            "shards": 1,
            "totalPostFilterLines": lines,
            "totalStructuredMetadataBytesProcessed": 0,
        },
        "querier": {"store": {"totalChunksRef": len(selected), "totalChunksDownloaded": len(selected)}},
        "ingester": {"totalReached": 1, "totalChunksMatched": len(selected), "totalLinesSent": lines},
    }
    return (
        b'{"status":"success","data":{"resultType":"streams","result":['
        + b",".join(result)
        + b'],"stats":'
        + json.dumps(stats).encode()
        + b"}}"
    )


def serve_loki(port: int, stored_lines: int, end_ns: int) -> None:
    store = build_store(stored_lines, end_ns)
    latency = [0.0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else small answers stall on delayed ACKs (~40 ms)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = parse_qs(url.query)
            status, body, work = 200, b"ready", 0.0
            if url.path == "/loki/api/v1/query_range":
                started = time.perf_counter()
                try:
                    body = query_range(store, params)
                except (KeyError, ValueError) as exc:
                    status, body = 400, str(exc).encode()
                work = time.perf_counter() - started
                if latency[0]:
                    time.sleep(latency[0])  # SIMULATED query time, only when asked for
            elif url.path == LATENCY_PATH:
                latency[0] = float(params["ms"][0]) / 1000
            elif url.path != "/ready":
                self.send_error(404)
                return
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(STAND_IN_WORK_HEADER, f"{work:.6f}")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 200; give up at once if `process` (the server) has exited."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready within {READY_TIMEOUT_SECONDS}s: {url}")


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


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


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
    parser.add_argument("--serve-loki", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--end-ns", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    stored = args.stored_lines or 5 * args.lines
    if args.serve_loki:
        serve_loki(args.serve_loki, stored, args.end_ns)
        return

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
    stand_in = [sys.executable, __file__, "--serve-loki", str(loki_port), "--end-ns", str(end_ns)]
    stand_in += ["--lines", str(args.lines), "--stored-lines", str(stored)]
    server = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    server += ["--http", args.http, "--loop", args.loop]
    gateway = [sys.executable, "-m", "uvicorn", args.app, "--factory", "--port", str(gateway_port), *server]
    floor = [sys.executable, "-m", "uvicorn", "passthrough_app:create_app", "--factory"]
    floor += ["--app-dir", os.path.dirname(os.path.abspath(__file__)), "--port", str(floor_port), *server]
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
