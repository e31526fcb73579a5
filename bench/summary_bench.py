"""Summary pipeline benchmark (offline path: no model call).

  .venv/bin/python bench/summary_bench.py [--lines 100000]

Prints the time to summarize N lines (current window; the previous window of equal length is
read too, as in the service), lines per second, and the prompt size for inputs of very
different shapes, which must stay under 8k tokens whatever the input. Targets: <= 2 s for 100k
lines, <= 8000 prompt tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import GatewaySettings
from gateway.services.redact import redact
from gateway.services.summarize import Summarizer, SummaryQuery
from tests.gateway.summary_logs import INCIDENT_COUNT, NS, SyntheticLog

TARGET_SECONDS = 2.0
TARGET_TOKENS = 8000
BYTES_PER_TOKEN = 4
END_NS = 1_763_798_400 * NS
START_NS = END_NS - 3600 * NS

Entry = tuple[int, dict[str, str], str]


class Replay:
    """Lines generated up front, so the timing covers the pipeline, not the generator."""

    def __init__(self, windows: dict[int, list[Entry]]) -> None:
        self.windows = windows

    async def iter_lines(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        page_size: int = 1000,
        max_lines: int | None = None,
    ) -> AsyncIterator[Entry]:
        for n, entry in enumerate(self.windows.get(start_ns, [])):
            if max_lines is not None and n >= max_lines:
                return
            yield entry


async def collect(log: SyntheticLog, start_ns: int) -> list[Entry]:
    return [entry async for entry in log.iter_lines("", start_ns=start_ns, end_ns=start_ns + 3600 * NS)]


def unique_lines(count: int, seed: int) -> list[Entry]:
    """Worst case for the prompt: every line a different template with long words."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        (
            START_NS + i,
            {"level": rng.choice(["error", "warn", "info"]), "service_name": f"svc{i % 7}"},
            " ".join("".join(rng.choice(letters) for _ in range(40)) for _ in range(8)),
        )
        for i in range(count)
    ]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    settings = GatewaySettings(_env_file=None)  # type: ignore[call-arg]

    log = SyntheticLog(lines=args.lines - INCIDENT_COUNT, incident_at_ns=START_NS + 1800 * NS)
    replay = Replay(
        {
            START_NS - 3600 * NS: await collect(log, START_NS - 3600 * NS),
            START_NS: await collect(log, START_NS),
        }
    )
    query = SummaryQuery(
        '{source=~"gcs|firestore|pod"}',
        START_NS,
        END_NS,
        max_lines=args.lines,
        prompt_max_bytes=settings.summary_prompt_max_bytes,
    )
    started = time.perf_counter()
    answer = await Summarizer(replay, redact, None).summarize(query)
    elapsed = time.perf_counter() - started
    lines = answer["lines_read"] + answer["previous_lines_read"]
    print(
        f"offline summary: {answer['lines_read']} lines (+{answer['previous_lines_read']} previous window) "
        f"in {elapsed:.2f} s = {lines / elapsed:,.0f} lines/s; {answer['templates_total']} templates; "
        f"target <= {TARGET_SECONDS} s: {'OK' if elapsed <= TARGET_SECONDS else 'MISSED'}"
    )
    first = answer["evidence"][0]
    print(f"  top template {first['id']} x{first['count']} ({first['change']}): {first['template']}")

    worst = 0
    for label, windows, budget in (
        ("100k synthetic, default budget", replay.windows, settings.summary_prompt_max_bytes),
        (
            "20k unique templates, default budget",
            {START_NS: unique_lines(20_000, 1)},
            settings.summary_prompt_max_bytes,
        ),
        ("20k unique templates, budget set to 10 MB", {START_NS: unique_lines(20_000, 2)}, 10_000_000),
        ("1 line, default budget", {START_NS: unique_lines(1, 3)}, settings.summary_prompt_max_bytes),
    ):
        sized = SummaryQuery(query.query, START_NS, END_NS, max_lines=args.lines, prompt_max_bytes=budget)
        result = await Summarizer(Replay(windows), redact, None).summarize(sized)
        prompt = result["prompt"]
        tokens = prompt["bytes"] / BYTES_PER_TOKEN
        worst = max(worst, int(tokens))
        print(
            f"prompt [{label}]: {prompt['bytes']} bytes ~ {tokens:.0f} tokens; "
            f"{prompt['templates_included']} templates in, {prompt['templates_omitted']} left out "
            f"of {result['templates_total']}"
        )
    print(
        f"largest prompt ~ {worst} tokens; "
        f"target <= {TARGET_TOKENS}: {'OK' if worst <= TARGET_TOKENS else 'MISSED'}"
    )
    return 0 if elapsed <= TARGET_SECONDS and worst <= TARGET_TOKENS else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
