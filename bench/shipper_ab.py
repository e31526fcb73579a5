"""Two settings or two checkouts of the shipper against each other: alternated `shipper once`
rounds into one real Loki with raised ingest limits, each over a fresh bucket of the GCS emulator.

    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/shipper_ab.py \
        --a PUSHES_IN_FLIGHT=2 --b PUSHES_IN_FLIGHT=3 [--pairs 6] [--lines 300000]
    # this checkout's code against another's (e.g. a worktree of an earlier commit):
    ... bench/shipper_ab.py --a-checkout ../before [--b-checkout .]
    # a Loki across a network: every chunk held for half of a 20 ms round trip each way
    ... bench/shipper_ab.py --a PUSH_CONCURRENCY=1 --b PUSH_CONCURRENCY=2 --rtt-ms 20

Each pair runs A then B, the next pair B then A, so a machine that slows down or speeds up during
the run hits both alike. Printed: every round's lines/s, CPU and Loki's CPU, the medians, and in
how many pairs B was faster. This VM's CPU seconds move by 10-30 % from run to run: only a
difference that holds pair after pair means something.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from delay_proxy import DelayProxy  # noqa: E402
from shipper_rounds import emulator_running, loki_cpu, run_once, shipper_env, upload_object  # noqa: E402

from tests.real_loki import RAISED_LIMITS, find_loki_binary, run_id, start_loki  # noqa: E402


def overrides(pairs: list[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"not NAME=VALUE: {pair!r}")
        parsed[name] = value
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="*", default=[], help="NAME=VALUE settings of A (default: none)")
    parser.add_argument("--b", nargs="*", default=[], help="NAME=VALUE settings of B")
    parser.add_argument("--a-checkout", type=Path, default=ROOT, help="whose shipper package A runs")
    parser.add_argument("--b-checkout", type=Path, default=ROOT, help="whose shipper package B runs")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--rtt-ms", type=float, default=0.0,
                        help="reach Loki through a proxy adding this round trip (bench/delay_proxy.py)")
    args = parser.parse_args()
    settings = {"A": overrides(args.a), "B": overrides(args.b)}
    checkouts = {"A": args.a_checkout.resolve(), "B": args.b_checkout.resolve()}
    binary = find_loki_binary()
    if binary is None:
        raise SystemExit("no Loki binary: set LOKI_BINARY or put loki on PATH")
    speeds: dict[str, list[float]] = {"A": [], "B": []}
    cpus: dict[str, list[float]] = {"A": [], "B": []}
    loki_cpus: dict[str, list[float]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        loki = start_loki(binary, work / "loki", extra_flags=RAISED_LIMITS)
        try:
            proxy = DelayProxy(loki.url, args.rtt_ms / 1000) if args.rtt_ms > 0 else nullcontext(loki.url)
            with emulator_running() as (_, emulator_url), proxy as loki_url:
                for pair in range(args.pairs):
                    for side in ("AB" if pair % 2 == 0 else "BA"):
                        bucket = run_id("ab")
                        upload_object(emulator_url, bucket, args.lines, time.time() - 3000, work)
                        env = {**shipper_env(loki, emulator_url, bucket, work / bucket), "LOKI_URL": loki_url,
                               **settings[side]}
                        loki_before = loki_cpu(loki)
                        output, code, wall, cpu = run_once(env, checkouts[side])
                        loki_cpus[side].append(loki_cpu(loki) - loki_before)
                        if code != 0:
                            raise SystemExit(f"shipper once ({side}) failed ({code}):\n{output}")
                        speeds[side].append(args.lines / wall)
                        cpus[side].append(cpu)
                        print(f"  pair {pair + 1} {side}: {args.lines / wall:9,.0f} lines/s, "
                              f"CPU {cpu:.2f} s, Loki's {loki_cpus[side][-1]:.2f} s", flush=True)
        finally:
            loki.stop()
    wins = sum(b > a for a, b in zip(speeds["A"], speeds["B"], strict=True))
    for side in "AB":
        speed, cpu, loki_used = (statistics.median(values[side]) for values in (speeds, cpus, loki_cpus))
        what = f"{checkouts[side]} {settings[side] or '(defaults)'}"
        print(f"{side} {what}: median {speed:,.0f} lines/s, CPU {cpu:.2f} s, Loki's {loki_used:.2f} s")
    print(f"B faster in {wins} of {args.pairs} pairs")


if __name__ == "__main__":
    main()
