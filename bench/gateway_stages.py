"""What the gateway's query_range costs, stage by stage, in CPU per 1,000-line page: the real Loki
(started here, seeded like bench/real_loki_bench.py), the gateway's own LokiClient and page code,
in this process, each stage timed alone over many pages (issue 16: what the floor consists of).

    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/gateway_stages.py [--pages 200]

Printed per page: the Loki exchange through the gateway's client (request, reading the ~200 KB
answer, orjson decode), decoding alone, shaping into the DESIGN.md answer shape (RFC 3339 stamps,
page cut, cursor) without redaction, redaction alone, encoding the answer. bench/real_loki_bench.py
prints the whole request's CPU in the gateway process; what these stages do not cover of it is
uvicorn, FastAPI, auth, rate limit and guardrails."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import NS  # noqa: E402
from gateway_rounds import LINES_PER_ANSWER, WINDOW_S, seed_gateway_data, trades_selector  # noqa: E402

from gateway.config import GatewaySettings  # noqa: E402
from gateway.services.loki import LokiClient  # noqa: E402
from gateway.services.pagination import plan_page, query_digest, shape_page  # noqa: E402
from gateway.services.redact import redact_many  # noqa: E402
from gateway.wiring import LOKI_NETWORK, http_client, loki_pool_limits  # noqa: E402
from tests.real_loki import RealLoki, find_loki_binary, run_id, start_loki  # noqa: E402

ROUNDS = 6  # each figure is the median round; the Loki exchange also runs one more to warm up


def cpu_ms(work: Callable[[], Any], per_round: int) -> float:
    """CPU per call of `work`: the median of ROUNDS rounds of `per_round` calls."""
    figures = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for _ in range(per_round):
            work()
        figures.append((time.process_time() - began) / per_round * 1000)
    return statistics.median(figures)


async def exchange_ms(
    settings: GatewaySettings, query: str, windows: Iterator[int], networks: dict[str, Any], per_round: int
) -> dict[str, float]:
    """CPU per call of LokiClient.query_range (limit+1, as the gateway asks), a window of its own
    each, for a client over each of `networks`: rounds alternated, the median round of each."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: LokiClient(
                await stack.enter_async_context(http_client(None, loki_pool_limits(settings), 30.0, network)),
                settings,
            )
            for name, network in networks.items()
        }
        figures: dict[str, list[float]] = {name: [] for name in networks}
        for round_no in range(ROUNDS + 1):  # the first round warms up
            for name, loki in clients.items():
                began = time.process_time()
                for start in itertools.islice(windows, per_round):
                    await loki.query_range(query, start_ns=start * NS, end_ns=(start + WINDOW_S) * NS,
                                           limit=LINES_PER_ANSWER + 1)
                if round_no:
                    figures[name].append((time.process_time() - began) / per_round * 1000)
    return {name: statistics.median(values) for name, values in figures.items()}


PAGE_WORK = ("decoding Loki JSON (orjson, part of the exchange)", "shaping, no redaction",
             "redaction (one trigger scan, 1 line in 50 looked at)", "encoding our answer (orjson)")


def page_stages_ms(loki: RealLoki, query: str, start_s: int, per_round: int) -> tuple[str, dict[str, float]]:
    """CPU a page of each PAGE_WORK stage, for Loki's answer to `query` over the window at
    `start_s` (asked as the gateway asks it), and a line describing that page."""
    params: dict[str, str | int] = {"query": query, "start": start_s * NS, "end": (start_s + WINDOW_S) * NS,
                                    "limit": LINES_PER_ANSWER + 1}
    headers = {"X-Loki-Response-Encoding-Flags": "categorize-labels"}
    raw = loki.http.get("/loki/api/v1/query_range", params=params, headers=headers).content
    data = orjson.loads(raw)["data"]
    plan = plan_page(start_ns=start_s * NS, end_ns=(start_s + WINDOW_S) * NS, limit=LINES_PER_ANSWER,
                     direction="backward", cursor=None)
    digest = query_digest(query, "backward", None)

    def shaped(redact: bool) -> Any:
        return shape_page(data, request=plan, limit=LINES_PER_ANSWER, direction="backward",
                          digest=digest, redact_lines=redact)

    page = shaped(True)
    lines = [v[1] for s in data["result"] for v in s["values"]]
    answer = {"streams": page.streams, "truncated": page.truncated, "next_cursor": page.next_cursor}
    about = (f"one page: {page.returned} entries, Loki's answer {len(raw) / 1024:.0f} KB, "
             f"ours {len(orjson.dumps(answer)) / 1024:.0f} KB")
    work: list[Callable[[], Any]] = [lambda: orjson.loads(raw), lambda: shaped(False),
                                     lambda: redact_many(lines), lambda: orjson.dumps(answer)]
    return about, {name: cpu_ms(stage, per_round) for name, stage in zip(PAGE_WORK, work, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    binary = find_loki_binary()
    if binary is None:
        raise SystemExit("no Loki binary: set LOKI_BINARY or put loki on PATH")
    loki = start_loki(binary, Path(tempfile.mkdtemp(prefix="gateway-stages-")) / "loki")
    try:
        per_round = max(1, args.pages // ROUNDS)
        networks = {"httpx over aiohttp (the gateway's)": LOKI_NETWORK,
                    "httpx over httpcore": httpx.AsyncHTTPTransport}
        run, end_s = run_id("st"), int(time.time()) - 5
        span_s = len(networks) * (ROUNDS + 1) * per_round + WINDOW_S  # a window of its own per call
        seed_gateway_data(loki, run, span_s, end_s)
        query = trades_selector(run)
        key = SecretStr(secrets.token_urlsafe(32))
        settings = GatewaySettings(loki_url=loki.url, ai_monitoring_api_key=key)
        start = end_s - span_s
        figures = asyncio.run(exchange_ms(settings, query, itertools.count(start), networks, per_round))
        about, stages = page_stages_ms(loki, query, start, per_round)
        print(f"{about}; CPU a page (median round):")
        for name, ms in figures.items():
            print(f"  Loki exchange, {name:<36} {ms:5.2f} ms")
        for name, ms in stages.items():
            print(f"  {name:<53} {ms:5.2f} ms")
    finally:
        loki.stop()


if __name__ == "__main__":
    main()
