"""A deterministic synthetic log with a planted incident, served through the summary's
LineReader protocol (no Loki needed). Shared by tests/gateway/services/test_summary*.py,
tests/gateway/api/routes/test_summary_api.py and bench/summary_bench.py."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

NS = 1_000_000_000
INCIDENT_COUNT = 1234
SECRETS = (
    "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
    "hunter2-Sup3rSecret!",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVlLTEyMzQ1Ng",
)


def _background(rng: random.Random, index: int) -> tuple[dict[str, str], str]:
    if index % 997 == 3:  # lines that leak credentials, as real ones do
        secret = SECRETS[(index // 997) % len(SECRETS)]
        text = f"password={secret}" if "hunter" in secret else f"Authorization: Bearer {secret}"
        return {"source": "pod", "service_name": "api", "level": "warn"}, f"upstream auth retry with {text}"
    pick = index % 10
    if pick < 4:
        return (
            {"source": "pod", "service_name": "api", "level": "info"},
            f"GET /api/orders/{rng.randint(1, 10**6)} 200 {rng.randint(1, 900)}ms "
            f"from 10.1.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        )
    if pick < 7:
        return (
            {"source": "gcs", "service_name": "trades", "level": "info"},
            f"trade executed symbol=AAPL qty={rng.randint(1, 100)} price={rng.uniform(100, 200):.2f} "
            f"id={rng.getrandbits(64):016x}",
        )
    if pick < 9:
        return (
            {"source": "firestore", "service_name": "gpt_runner_reflections", "level": "debug"},
            f"reflection stored doc {rng.getrandbits(48):012x} tokens={rng.randint(100, 4000)}",
        )
    # a steady error, as frequent in both windows: real but not news
    return (
        {"source": "pod", "service_name": "worker", "level": "error"},
        f"retrying job {rng.randint(1, 10**5)} after timeout of {rng.randint(1, 30)}s",
    )


def incident_line(rng: random.Random) -> str:
    return (
        f"payment gateway refused connection to 10.20.30.{rng.randint(1, 254)}:5432 "
        f"for order {rng.randint(1, 10**6)}"
    )


@dataclass
class SyntheticLog:
    """`lines` background lines per window (previous and current alike) plus, in the window that
    contains `incident_at_ns`, INCIDENT_COUNT incident lines. Entries are generated on the fly."""

    lines: int
    incident_at_ns: int
    incident_count: int = INCIDENT_COUNT
    calls: list[dict[str, object]] = field(default_factory=list)

    async def iter_lines(
        self,
        query: str,
        *,
        start_ns: int,
        end_ns: int,
        tenant: str | None = None,
        page_size: int = 1000,
        max_lines: int | None = None,
    ) -> AsyncIterator[tuple[int, dict[str, str], str]]:
        self.calls.append({"query": query, "start_ns": start_ns, "end_ns": end_ns, "max_lines": max_lines})
        errors_only = 'level=~"error|critical"' in query
        rng = random.Random(start_ns)
        incident = start_ns <= self.incident_at_ns < end_ns
        total = self.lines + (self.incident_count if incident else 0)
        step = max(1, (end_ns - start_ns) // max(total, 1))
        sent = 0
        incident_every = total // self.incident_count if incident else 0
        incident_sent = 0
        for index in range(total):
            if max_lines is not None and sent >= max_lines:
                return
            ts = start_ns + index * step
            if incident and incident_sent < self.incident_count and index % incident_every == 0:
                labels = {"source": "pod", "service_name": "payments", "level": "error"}
                line = incident_line(rng)
                incident_sent += 1
            else:
                labels, line = _background(rng, index)
            if errors_only and labels["level"] not in ("error", "critical"):
                continue
            sent += 1
            yield ts, labels, line
