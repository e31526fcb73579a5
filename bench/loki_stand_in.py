"""A Loki stand-in for bench/gateway_overhead.py: a small real HTTP server (its own process) that
runs a real query_range over the lines it stores. It parses the selector, keeps the streams whose
labels match, takes the entries in [start, end), the first `limit` of them in `direction` across
streams, each stream ordered in that direction, and encodes the answer with Loki's JSON
(status/data/resultType/result/stats) per request. Each answer carries the stand-in's own work in
a header; `GET /bench/latency?ms=N` makes it sleep N ms before each later answer (simulated query
time).

    .venv/bin/python bench/loki_stand_in.py --port PORT --end-ns END_NS --stored-lines LINES"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import secrets
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STREAMS = 4  # streams the selector matches; one more stream (another service) it does not
WINDOW_NS = 3_600 * 10**9
STAND_IN_WORK_HEADER = "X-Stand-In-Work-Seconds"
LATENCY_PATH = "/bench/latency"
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\]*)"\s*(?:,|$)')


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--end-ns", type=int, required=True, help="the stored hour ends here")
    parser.add_argument("--stored-lines", type=int, required=True)
    args = parser.parse_args()
    serve_loki(args.port, args.stored_lines, args.end_ns)


if __name__ == "__main__":
    main()
