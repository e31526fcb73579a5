"""Gateway overhead: p50/p99 of the same 1,000-line query_range answered directly by a local Loki
stand-in and through the gateway (uvicorn, real HTTP on 127.0.0.1). Target: <= 1.15x at p50.

    .venv/bin/python bench/gateway_overhead.py [--requests 300] [--lines 1000]

The stand-in is a tiny real HTTP server (its own process) returning a pre-built Loki answer. The
gateway runs with its response cache off, redaction on (the default), one uvicorn worker."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

SELECTOR = '{source="gcs", service_name="trades"}'
READY_TIMEOUT_SECONDS = 30.0
WARMUP_REQUESTS = 30
REQUEST_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loki_answer(lines: int) -> bytes:
    base = time.time_ns() - 600 * 1_000_000_000
    streams = []
    for s in range(4):
        values = [
            [
                str(base + i * 1_000_000),
                f'{{"ts":"2024-05-01T12:00:{i % 60:02d}Z","level":"info","msg":"trade executed",'
                f'"symbol":"AAPL","qty":{i},"price":123.45,"order_id":"ord-{i:06d}","stream":{s}}}',
            ]
            for i in range(s, lines, 4)
        ]
        labels = {
            "source": "gcs",
            "service_name": "trades",
            "bucket": "prod",
            "prefix": "trades",
            "level": "info",
        }
        streams.append({"stream": {**labels, "shard": str(s)}, "values": values})
    body = {
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": streams,
            "stats": {
                "summary": {"totalBytesProcessed": 123456, "totalLinesProcessed": lines, "execTime": 0.01}
            },
        },
    }
    return json.dumps(body).encode()


def serve_loki(port: int, lines: int, latency_seconds: float) -> None:
    payload = loki_answer(lines)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else small answers stall on delayed ACKs (~40 ms)

        def do_GET(self) -> None:
            if self.path.startswith("/loki/api/v1/query_range") or self.path == "/ready":
                body = payload if self.path != "/ready" else b"ready"
                if latency_seconds and body is payload:
                    time.sleep(latency_seconds)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def wait_ready(url: str, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"not ready within {READY_TIMEOUT_SECONDS}s: {url}")


def timed_get(client: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]) -> float:
    started = time.perf_counter()
    answer = client.get(url, params=params, headers=headers)
    answer.raise_for_status()
    answer.json()  # a client uses the answer; both sides pay the decode
    return time.perf_counter() - started


def measure_interleaved(
    client: httpx.Client, targets: list[tuple[str, dict[str, str], dict[str, str]]], n: int
) -> list[list[float]]:
    """Alternate between the targets so load from elsewhere on the machine hits both alike."""
    for _ in range(WARMUP_REQUESTS):
        for url, params, headers in targets:
            timed_get(client, url, params, headers)
    timings: list[list[float]] = [[] for _ in targets]
    for _ in range(n):
        for i, (url, params, headers) in enumerate(targets):
            timings[i].append(timed_get(client, url, params, headers))
    return timings


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument(
        "--loki-latency-ms",
        type=float,
        default=0.0,
        help="stand-in think time per query (a real Loki has some)",
    )
    parser.add_argument("--http", default="auto", help="uvicorn HTTP implementation: auto, h11, httptools")
    parser.add_argument("--loop", default="auto", help="uvicorn event loop: auto, asyncio, uvloop")
    parser.add_argument("--serve-loki", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_loki:
        serve_loki(args.serve_loki, args.lines, args.loki_latency_ms / 1000)
        return

    loki_port, gateway_port = free_port(), free_port()
    key = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "AI_MONITORING_API_KEY": key,
        "GATEWAY_API_KEYS_FILE": "",
        "LOKI_URL": f"http://127.0.0.1:{loki_port}",
        "CACHE_TTL_SECONDS": "0",
        "RATE_LIMIT": "1000000/minute",
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("GATEWAY_API_KEYS_FILE")
    env.pop("REDIS_URL")
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve-loki",
                str(loki_port),
                "--lines",
                str(args.lines),
                "--loki-latency-ms",
                str(args.loki_latency_ms),
            ]
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "gateway.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(gateway_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--http",
                args.http,
                "--loop",
                args.loop,
            ],
            env=env,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{loki_port}/ready")
        wait_ready(f"http://127.0.0.1:{gateway_port}/health")
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)
        with httpx.Client(timeout=timeout) as client:
            now = time.time_ns()
            direct, through = measure_interleaved(
                client,
                [
                    (
                        f"http://127.0.0.1:{loki_port}/loki/api/v1/query_range",
                        {
                            "query": SELECTOR,
                            "start": str(now - 3_600 * 10**9),
                            "end": str(now),
                            "limit": str(args.lines),
                        },
                        {},
                    ),
                    (
                        f"http://127.0.0.1:{gateway_port}/api/monitoring/logs/query_range",
                        {"query": SELECTOR, "hours": "1", "limit": str(args.lines)},
                        {"x-api-key": key},
                    ),
                ],
                args.requests,
            )
            sample = client.get(
                f"http://127.0.0.1:{gateway_port}/api/monitoring/logs/query_range",
                params={"query": SELECTOR, "hours": "1", "limit": str(args.lines)},
                headers={"x-api-key": key},
            ).json()
        returned = sum(len(s["entries"]) for s in sample["streams"])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    d50, d99 = percentile(direct, 50), percentile(direct, 99)
    g50, g99 = percentile(through, 50), percentile(through, 99)
    print(
        f"lines per answer: {args.lines} (gateway returned {returned}), requests each: {args.requests}, "
        f"stand-in latency: {args.loki_latency_ms:g} ms, uvicorn --http {args.http} --loop {args.loop}"
    )
    print(f"direct : p50 {d50 * 1000:7.2f} ms   p99 {d99 * 1000:7.2f} ms")
    print(f"gateway: p50 {g50 * 1000:7.2f} ms   p99 {g99 * 1000:7.2f} ms")
    print(f"ratio  : p50 {g50 / d50:5.2f}x      p99 {g99 / d99:5.2f}x   (target <= 1.15x at p50)")


if __name__ == "__main__":
    main()
