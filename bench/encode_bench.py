"""Throughput of the Loki sink's hot path on one core, for protobuf+snappy and JSON+gzip:

- "prepare+encode": limits and labels (prepare.py) + request body (encode.py), no HTTP;
- "LokiSink.push": the whole push() into an in-process httpx transport that answers 204 and
  only counts bytes (no network, no decoding), i.e. everything the sink itself costs.

Records are made the way the pipeline hands them over: in chunks (`--chunk`, default 10,000),
each pushed and then dropped; only the sink's work is timed.

    .venv/bin/python bench/encode_bench.py [--records 200000] [--line-bytes 200] [--chunk 10000]

Prints lines/s and MB/s (line bytes) per CPU second of this process, best of `--repeat` runs,
so that other load on a shared machine distorts the figure less; wall time is shown alongside."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from shipper.models import LogRecord
from shipper.records import gc_paused
from shipper.sinks.loki import LokiSink, LokiSinkConfig
from shipper.sinks.loki.encode import Encoder, PushFormat, group_streams
from shipper.sinks.loki.prepare import Preparer

TARGET_LINES_PER_SECOND = 100_000
Run = Callable[[list[LogRecord]], int]  # pushes one chunk, returns the body bytes sent


@dataclass
class Totals:
    lines: int = 0
    line_bytes: int = 0
    body_bytes: int = 0
    cpu: float = 0.0
    wall: float = 0.0


def chunks(count: int, line_bytes: int, chunk: int) -> Iterator[list[LogRecord]]:
    """JSON-ish lines of about line_bytes, 12 label sets, GCS-like metadata (object, line_no)."""
    rng = random.Random(7)
    start_ns = time.time_ns() - 3600 * 1_000_000_000
    label_sets = [
        {"source": "gcs", "service_name": prefix, "bucket": "bench", "prefix": prefix, "level": level}
        for prefix in ("trades", "reflections", "strategies") for level in ("info", "warn", "error", "debug")
    ]
    filler = "x" * line_bytes
    for first in range(0, count, chunk):
        records = []
        for i in range(first, min(count, first + chunk)):
            head = (f'{{"ts":{start_ns + i * 1000},"symbol":"S{rng.randrange(500)}",'
                    f'"qty":{rng.randrange(10**6)},"msg":"')
            records.append(
                LogRecord(
                    ts_ns=start_ns + i * 1000,
                    line=head + filler[: max(0, line_bytes - len(head) - 2)] + '"}',
                    labels=dict(label_sets[i % len(label_sets)]),
                    metadata={"object": f"trades/2026/11/22/{i // 100_000}.jsonl", "line_no": str(i)},
                )
            )
        yield records


def encode_only(push_format: PushFormat) -> Run:
    preparer = Preparer(max_age_ns=None)
    encoder = Encoder(push_format)

    def run(records: list[LogRecord]) -> int:
        with gc_paused():  # as LokiSink.push does
            entries = preparer.prepare(records, now_ns=time.time_ns()).entries
            entries.sort(key=lambda entry: entry.ts_ns)
            return len(encoder.encode(group_streams(entries, in_ts_order=True)))

    return run


def full_push(push_format: PushFormat) -> Run:
    received = [0]

    def accept(request: httpx.Request) -> httpx.Response:
        received[0] += len(request.content)
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(accept))
    sink = LokiSink(LokiSinkConfig(url="http://loki.bench", push_format=push_format), client)

    def run(records: list[LogRecord]) -> int:
        before = received[0]
        result = sink.push(records, source="bench")
        assert result.accepted == len(records), result
        return received[0] - before

    return run


def measure(name: str, make_run: Callable[[], Run], args: argparse.Namespace) -> float:
    best: Totals | None = None
    for _ in range(args.repeat):
        run, totals = make_run(), Totals()
        for records in chunks(args.records, args.line_bytes, args.chunk):
            wall_started, cpu_started = time.perf_counter(), time.process_time()
            totals.body_bytes += run(records)
            totals.cpu += time.process_time() - cpu_started
            totals.wall += time.perf_counter() - wall_started
            totals.lines += len(records)
            totals.line_bytes += sum(len(record.line) for record in records)
        if best is None or totals.cpu < best.cpu:
            best = totals
    assert best is not None
    rate = best.lines / best.cpu
    print(
        f"{name:<32} {rate:>10,.0f} lines/s {best.line_bytes / best.cpu / 1e6:>6.1f} MB/s"
        f"  (cpu {best.cpu:.2f}s, wall {best.wall:.2f}s, {best.body_bytes / 1e6:.1f} MB sent)"
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--line-bytes", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=10_000, help="records per push() call")
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    print(f"{args.records:,} records of ~{args.line_bytes} bytes, {args.chunk:,} per push, "
          f"batches of <= 10,000 entries / 1 MiB")
    measure("prepare+encode protobuf+snappy", lambda: encode_only("protobuf"), args)
    measure("prepare+encode JSON+gzip", lambda: encode_only("json"), args)
    protobuf = measure("LokiSink.push protobuf+snappy", lambda: full_push("protobuf"), args)
    measure("LokiSink.push JSON+gzip", lambda: full_push("json"), args)
    verdict = "OK" if protobuf >= TARGET_LINES_PER_SECOND else "MISSED"
    print(f"target >= {TARGET_LINES_PER_SECOND:,} lines/s (default protobuf push): {verdict}")
    return 0 if protobuf >= TARGET_LINES_PER_SECOND else 1


if __name__ == "__main__":
    raise SystemExit(main())
