"""Instructions `shipper once` executes, counted by valgrind (cachegrind, no cache simulation):
the same figure on every run, where CPU seconds on a shared 2-core VM move by 10-30 % from one run
to the next. Prints the start-up (a pass over an empty bucket) and the instructions a line
(a pass over N JSON lines, less the start-up, over N), for each checkout given, so a change can be
compared with the commit before it:

    git worktree add /tmp/before HEAD~1
    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/shipper_instructions.py \\
        [--lines 30000] . /tmp/before

Needs `valgrind` (Debian package). The lines, the GCS emulator and the real Loki (raised ingest
limits) are those of bench/real_loki_bench.py; the shipper runs ~50 times slower under valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT
from real_loki_bench import loki_running
from shipper_rounds import compile_checkout, emulator_bucket, emulator_running, shipper_env, upload_object

from tests.real_loki import RAISED_LIMITS, RealLoki, find_loki_binary, run_id

_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def instructions(checkout: Path, loki: RealLoki, emulator_url: str, bucket: str, work: Path) -> int:
    """Instructions of one `shipper once` of `checkout`'s shipper package over `bucket`."""
    env = {**shipper_env(loki, emulator_url, bucket, work / run_id("state")), "PYTHONPATH": str(checkout)}
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, "-m", "shipper", "once"],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )
    found = _INSTRUCTIONS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"shipper once under valgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[ROOT], help="default: this one")
    parser.add_argument("--lines", type=int, default=30_000)
    args = parser.parse_args()
    binary = find_loki_binary()
    if binary is None or shutil.which("valgrind") is None:
        raise SystemExit("needs the Loki binary (LOKI_BINARY) and valgrind (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="shipper-instructions-"))
    try:
        with emulator_running() as (_, emulator_url), loki_running(
            binary, work, "loki-raised", RAISED_LIMITS
        ) as loki:
            full, empty = run_id("lines"), run_id("empty")
            upload_object(emulator_url, full, args.lines, time.time() - 3000, work)
            emulator_bucket(emulator_url, empty)
            print(f"shipper once under valgrind, {args.lines:,} JSON lines; Python {sys.version.split()[0]}")
            for given in args.checkouts:
                checkout = given.resolve()
                compile_checkout(checkout)
                start_up = instructions(checkout, loki, emulator_url, empty, work)
                whole = instructions(checkout, loki, emulator_url, full, work)
                print(f"  {os.path.relpath(checkout, Path.cwd())}: start-up "
                      f"{start_up / 1e6:,.0f}M instructions, {(whole - start_up) / args.lines:,.0f} a line",
                      flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
