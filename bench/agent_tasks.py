"""Seven everyday agent tasks on the incident of issue 19, in the real Loki: requests and bytes
an agent spends, the way it had to ask before (pages of lines to count by hand, the summary body
without filters, lines read to guess fields) and the way it asks now (aggregate answers, summary
filters, detected fields, byte budgets).

    LOKI_BINARY=../shared/tools/loki/loki .venv/bin/python bench/agent_tasks.py

The incident (tests/gateway/incident.py): in one bucket, 300 "insufficient margin (code -2019)",
12 "rate limit (code -1003)" and 6 websocket errors in trades, 10 OpenAI timeouts in reflections,
over background lines. "Before" runs with ANSWER_BUDGET_ON_REST=false and asks only what the API
offered then; both use the same gateway build, so the figures compare the asking, not the code.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.main import create_app  # noqa: E402
from gateway.security import generate_key  # noqa: E402
from tests.gateway.conftest import make_settings, running_client  # noqa: E402
from tests.gateway.incident import Incident, plant_incident  # noqa: E402
from tests.real_loki import find_loki_binary, start_loki  # noqa: E402


@dataclass
class Spent:
    requests: int = 0
    bytes: int = 0

    def __str__(self) -> str:
        return f"{self.requests:>3} req {self.bytes / 1024:>6.1f} KB"

    def add(self, other: Spent) -> None:
        self.requests += other.requests
        self.bytes += other.bytes

    async def ask(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
        answer = await client.request(method, path, **kwargs)
        answer.raise_for_status()
        self.requests += 1
        self.bytes += len(answer.content)
        return answer.json()

    async def pages(self, client: httpx.AsyncClient, path: str, params: dict[str, Any]) -> None:
        """Follow next_cursor to the end, as an agent that counts the lines by hand must."""
        cursor = None
        while True:
            page = {**params, **({"cursor": cursor} if cursor else {})}
            cursor = (await self.ask(client, "GET", path, params=page))["next_cursor"]
            if cursor is None:
                return


Task = Callable[[httpx.AsyncClient, Incident, Spent], Awaitable[None]]


def gcs(incident: Incident, **params: Any) -> dict[str, Any]:
    return {"bucket": incident.bucket, "since": "1h", **params}


async def dominant_before(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.pages(c, "/logs/gcs", gcs(i, prefix="trades", level="error"))


async def dominant_after(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.ask(c, "GET", "/logs/gcs", params=gcs(i, prefix="trades", level="error", aggregate="template"))


async def code_before(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.pages(c, "/logs/gcs", gcs(i, level="error", q="-1003"))


async def code_after(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.ask(c, "GET", "/logs/gcs", params=gcs(i, level="error", q="-1003", aggregate="template"))


async def summary_before(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.ask(c, "POST", "/logs/summary", json={"source": "gcs", "focus": "errors"})  # every bucket
    selector = f'{{source="gcs", bucket="{i.bucket}", prefix="trades"}}'
    await s.ask(c, "POST", "/logs/summary", json={"selector": selector, "focus": "errors"})


async def summary_after(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    body = {"source": "gcs", "bucket": i.bucket, "prefix": "trades", "focus": "errors", "since": "1h"}
    await s.ask(c, "POST", "/logs/summary", json=body)


async def timeouts_before(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.pages(c, "/logs/gcs", gcs(i, prefix="reflections", level="error"))


async def timeouts_after(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    params = gcs(i, prefix="reflections", level="error", aggregate="template")
    await s.ask(c, "GET", "/logs/gcs", params=params)


async def health(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.ask(c, "GET", "/api/monitoring/overview")


async def fields_before(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    await s.ask(c, "GET", "/logs/gcs", params=gcs(i, prefix="trades", level="error", limit=20))


async def fields_after(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    query = f'{{bucket="{i.bucket}", prefix="trades", level="error"}}'
    await s.ask(c, "GET", "/api/monitoring/logs/detected_fields", params={"query": query, "since": "1h"})


async def patterns(c: httpx.AsyncClient, i: Incident, s: Spent) -> None:
    query = f'{{bucket="{i.bucket}", prefix="trades"}}'
    await s.ask(c, "GET", "/api/monitoring/logs/patterns", params={"query": query, "since": "1h"})


TASKS: list[tuple[str, Task, Task]] = [
    ("which error dominates in trades, how often, since when", dominant_before, dominant_after),
    ("how many rate-limit errors (code -1003)", code_before, code_after),
    ("summarize the incident in trades", summary_before, summary_after),
    ("when did the OpenAI timeouts in reflections happen", timeouts_before, timeouts_after),
    ("is the platform healthy", health, health),
    ("which fields can trade errors be filtered on", fields_before, fields_after),
    ("which line patterns are in trades, with counts", patterns, patterns),
]


async def run(loki_url: str, incident: Incident) -> None:
    key = generate_key()
    apps = {
        "before": create_app(
            make_settings(ai_monitoring_api_key=key, loki_url=loki_url, answer_budget_on_rest=False)
        ),
        "after": create_app(make_settings(ai_monitoring_api_key=key, loki_url=loki_url)),
    }
    totals = {"before": Spent(), "after": Spent()}
    print(f"{'task':<56} {'before':>16} {'after':>16}")
    for name, before, after in TASKS:
        row = []
        for when, task in (("before", before), ("after", after)):
            async with running_client(apps[when]) as client:
                client.headers["x-api-key"] = key
                spent = Spent()
                await task(client, incident, spent)
            totals[when].add(spent)
            row.append(str(spent))
        print(f"{name:<56} {row[0]:>16} {row[1]:>16}")
    print(f"{'all seven':<56} {totals['before']!s:>16} {totals['after']!s:>16}")


def main() -> None:
    binary = find_loki_binary()
    if binary is None:
        sys.exit("no Loki binary: set LOKI_BINARY (e.g. ../shared/tools/loki/loki)")
    workdir = Path(tempfile.mkdtemp(prefix="agent-tasks-"))
    loki = start_loki(binary, workdir / "loki")
    try:
        incident = plant_incident(loki)
        asyncio.run(run(loki.url, incident))
    finally:
        loki.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
