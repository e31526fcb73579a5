"""Gateway and shipper measured against the real Loki binary, side by side in one run (issue 16).

    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/real_loki_bench.py \
        [--requests 200] [--shipper-lines 300000] [--repeats 5] [--profile-shipper]

The bench starts its own Lokis from the project's config (tests/real_loki.py's `start_loki`) and
prints three ratios, each the median of `--repeats` rounds:

1. gateway: `GET /api/monitoring/logs/query_range` for 1,000 lines (gateway cache off) vs the same
   request straight to Loki, p50; Loki runs with the project's limits (ops-stack/loki/loki.yaml).
   Every request of every target asks for a window of its own (start shifted by a second), so no
   answer comes from a cache. The targets are interleaved, so load from elsewhere hits all alike.
   Printed too: Loki asked exactly as the gateway asks it (limit+1, categorized labels), and the
   floor: bench/passthrough_app.py, the gateway's stack (FastAPI, uvicorn, one httpx.AsyncClient
   over aiohttp) passing Loki's answer through as bytes, the cost of the extra hop alone; and
   the gateway's own work on such a page, stage by stage (bench/gateway_stages.py: decoding Loki's
   answer, shaping, redaction, encoding ours), which with the hop is the floor any gateway that
   reshapes and redacts the page pays on this machine.
2. shipper throughput: `shipper once` (the real command, its own process, start-up included)
   shipping N JSON lines from a GCS emulator (its own process) into a Loki with raised ingest
   limits, vs Loki's own ceiling in the same run: the same number of lines, encoded beforehand
   as protobuf+snappy pushes of 5,000 lines, sent by 4 threads. Printed with it: the bounds the
   CPU of all three processes (shipper, Loki, emulator) sets on the shipper's throughput: their
   CPU spread over every core of the machine; and, tighter, the shipper's start-up (`shipper once`
   over an empty bucket: nothing else can run before its first push) on one core, then the rest
   of the CPU spread over every core.
3. shipper CPU (user+sys of the whole `shipper once` process, from wait4) vs the CPU Loki spent
   ingesting those same lines (psutil, before/after).

`--profile-shipper` runs one more `shipper once` under py-spy (`pip install py-spy`) and splits
the samples of the thread holding the interpreter lock into start-up, reading, record building,
encoding and the push.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import percentile  # noqa: E402
from gateway_rounds import (  # noqa: E402
    FLOOR,
    GATEWAY_CPU,
    LINES_PER_ANSWER,
    WINDOW_S,
    gateway_round,
    seed_gateway_data,
    trades_selector,
)
from gateway_stages import page_stages_ms  # noqa: E402
from pyspy import top_functions  # noqa: E402
from shipper_profile import profile_shipper  # noqa: E402
from shipper_rounds import (  # noqa: E402
    CEILING_BATCH,
    CEILING_THREADS,
    ceiling_round,
    emulator_running,
    shipper_round,
    startup_round,
)

from tests.real_loki import (  # noqa: E402
    LOKI_VERSION,
    RAISED_LIMITS,
    RealLoki,
    find_loki_binary,
    run_id,
    start_loki,
)

PAGE_WORK_CALLS = 50  # a round of each page-work stage (bench/gateway_stages.py)
THROUGHPUT_TARGET = 0.5  # of Loki's ceiling (issue 16)
# leaves of the gateway's idle waits, left out of its top functions
IDLE_LEAVES = ("Condition.wait", "Runner.run", "select (", "_worker (", "BaseSelectorEventLoop.select")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@contextmanager
def loki_running(binary: str, work: Path, name: str, flags: Sequence[str] = ()) -> Iterator[RealLoki]:
    loki = start_loki(binary, work / name, extra_flags=flags)
    try:
        yield loki
    finally:
        loki.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per target and round")
    parser.add_argument("--shipper-lines", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; each figure is their median")
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
        run, end_s = run_id("stages"), int(time.time()) - 5
        seed_gateway_data(loki, run, WINDOW_S + 5, end_s)
        _, page_work = page_stages_ms(loki, trades_selector(run), end_s - WINDOW_S - 5, PAGE_WORK_CALLS)
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
    hop_ms, work_ms = (floor - direct) * 1000, sum(page_work.values())
    stages = ", ".join(f"{name.split(' (')[0]} {ms:.2f} ms" for name, ms in page_work.items())
    print(f"  the gateway's page work, CPU a page (bench/gateway_stages.py): {stages} = {work_ms:.2f} ms")
    print(f"  floor with the page work: the hop {hop_ms:+.2f} ms + the page work {work_ms:.2f} ms = "
          f"{hop_ms + work_ms:+.2f} ms over direct (target <= +2.5 ms)")
    print(f"  RATIO gateway / direct at p50: {gateway / direct:.2f}x, {(gateway - direct) * 1000:+.2f} ms "
          f"(target <= 1.25x and <= +2.5 ms); load average {load()}")


def run_shipper(binary: str, work: Path, args: argparse.Namespace) -> None:
    count = args.shipper_lines
    with emulator_running() as (emulator, emulator_url), loki_running(
        binary, work, "loki-raised", RAISED_LIMITS
    ) as loki:
        ceilings, runs, startups = [], [], []
        for _ in range(0 if args.profile_only else args.repeats):
            ceilings.append(ceiling_round(loki, count))
            runs.append(shipper_round(loki, emulator, emulator_url, count, work))
            startups.append(startup_round(loki, emulator_url, work))
        if args.profile_shipper:
            print()
            profile_shipper(loki, emulator_url, count, work)
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
    rate_ratios = [r.lines_per_s / c[0] for r, c in zip(runs, ceilings, strict=True)]
    rounds_text = ", ".join(f"{x:.2f}" for x in rate_ratios)
    print(f"  RATIO shipper / ceiling: {rate / ceiling:.2f}x (target >= {THROUGHPUT_TARGET}x); each round "
          f"against its own ceiling: [{rounds_text}], median {median(rate_ratios):.2f}x")
    # no schedule finishes before the CPU all three processes need, spread over every core, is spent
    emulator_cpu = median([r.emulator_cpu for r in runs])
    bound_s = (cpu + loki_used + emulator_cpu) / (os.cpu_count() or 1)
    print(f"  bound from CPU: (shipper + Loki + emulator CPU) / {os.cpu_count()} cores = {bound_s:.2f} s, "
          f"at best {count / bound_s:,.0f} lines/s = {count / bound_s / ceiling:.2f}x of the ceiling")
    # before its first push the shipper runs alone, on one core; the rest can at best use them all
    startup_wall, startup_cpu = median([s[0] for s in startups]), median([s[1] for s in startups])
    serial_s = startup_wall + (cpu - startup_cpu + loki_used + emulator_cpu) / (os.cpu_count() or 1)
    print(f"  shipper start-up (`shipper once` over an empty bucket): wall {startup_wall:.2f} s, CPU "
          f"{startup_cpu:.2f} s; bound with it alone first: {serial_s:.2f} s, at best "
          f"{count / serial_s:,.0f} lines/s = {count / serial_s / ceiling:.2f}x of the ceiling")
    # that bound solved for the shipper's CPU: what the throughput target leaves it
    target_wall = count / (THROUGHPUT_TARGET * ceiling)
    cores = os.cpu_count() or 1
    allowed_cpu = (target_wall - startup_wall) * cores - loki_used - emulator_cpu + startup_cpu
    print(f"  {THROUGHPUT_TARGET}x of the ceiling ({target_wall:.2f} s) leaves the shipper at most "
          f"{allowed_cpu:.2f} s of CPU = {allowed_cpu / loki_used:.2f}x Loki's, even with every core busy "
          f"(it used {cpu:.2f} s = {cpu / loki_used:.2f}x)")
    print(f"\n3. CPU for those {count:,} lines: shipper {cpu:.2f} s "
          f"[{', '.join(f'{r.cpu:.2f}' for r in runs)}], Loki {loki_used:.2f} s "
          f"[{', '.join(f'{r.loki_cpu:.2f}' for r in runs)}], GCS emulator {emulator_cpu:.2f} s")
    cpu_ratios = [r.cpu / r.loki_cpu for r in runs]  # both sides of a round met the same machine
    rounds_text = ", ".join(f"{x:.2f}" for x in cpu_ratios)
    print(f"  RATIO shipper CPU / Loki CPU: {cpu / loki_used:.2f}x (target <= 1.2x); each round: "
          f"[{rounds_text}], median {median(cpu_ratios):.2f}x; load average {load()}")


if __name__ == "__main__":
    main()
