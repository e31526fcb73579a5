"""Live follow (GET /api/monitoring/logs/tail as Server-Sent Events, MCP tail_logs) on the real
Loki: lines already there and lines pushed while it runs, policy enforced, bounded, resumable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import Failure, as_api_error
from gateway.main import create_app
from gateway.services.tail import TailSlots
from tests.gateway.conftest import KeysFile, make_settings, running_client
from tests.real_loki import RealLoki, run_id

NS = 1_000_000_000
TAIL = "/api/monitoring/logs/tail"


def events(body: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields["event"], orjson.loads(fields["data"])))
    return found


def lines_of(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [e[1] for name, body in found if name == "entries" for s in body["streams"] for e in s["entries"]]


def test_tail_slots_bound_follows_per_key() -> None:
    slots = TailSlots(2)
    slots.acquire("k1")
    slots.acquire("k1")
    slots.acquire("k2")
    with pytest.raises(Failure) as refused:
        slots.acquire("k1")
    assert as_api_error(refused.value).status == 429 and refused.value.code == "too_many_tails"
    slots.release("k1")
    slots.acquire("k1")


async def test_follow_sees_old_and_new_lines_within_the_policy_and_resumes(
    real_loki: RealLoki, tmp_path: Path
) -> None:
    rid = run_id("tail")
    base = time.time_ns() - 60 * NS
    gcs = {"source": "gcs", "level": "info", "run_id": rid}
    pod = {"source": "pod", "level": "info", "run_id": rid}
    real_loki.push([(gcs, [(base + i, f"old {i}") for i in range(5)]), (pod, [(base, "pod secret")])])
    keys_file = KeysFile(tmp_path / "keys.yaml")
    key = keys_file.add("gcs", ["logs:read"], label_policy='{source="gcs"}')
    app = create_app(
        make_settings(
            gateway_api_keys_file=keys_file.path,
            loki_url=real_loki.url,
            tail_poll_seconds=0.2,
            tail_max_seconds=5,
        )
    )
    query = {"query": f'{{run_id="{rid}"}}'}

    async def push_soon(lines: list[str]) -> None:
        await asyncio.sleep(1.0)
        now = time.time_ns()
        await asyncio.to_thread(
            real_loki.push,
            [(gcs, [(now + i, line) for i, line in enumerate(lines)]), (pod, [(now, "pod new")])],
        )

    async with running_client(app) as client:
        pusher = asyncio.create_task(push_soon(["new 0", "new 1", "new 2"]))
        first = await client.get(
            TAIL, params={**query, "since": str(base - NS), "max_seconds": 3}, headers={"x-api-key": key}
        )
        await pusher
        found = events(first.text)
        end = found[-1]
        pusher = asyncio.create_task(push_soon(["later 0", "later 1"]))
        resumed = await client.get(
            TAIL,
            params={**query, "cursor": end[1]["next_cursor"], "max_seconds": 3},
            headers={"x-api-key": key},
        )
        await pusher
        capped = await client.get(
            TAIL, params={**query, "since": str(base - NS), "max_lines": 2}, headers={"x-api-key": key}
        )
        too_long = await client.get(TAIL, params={**query, "max_seconds": 600}, headers={"x-api-key": key})
        metric = await client.get(
            TAIL, params={"query": f'count_over_time({{run_id="{rid}"}}[1m])'}, headers={"x-api-key": key}
        )
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/event-stream")
    assert lines_of(found) == [f"old {i}" for i in range(5)] + ["new 0", "new 1", "new 2"]
    assert end[0] == "end" and end[1]["reason"] == "max_seconds" and end[1]["lines"] == 8
    assert lines_of(events(resumed.text)) == ["later 0", "later 1"]  # nothing again, nothing skipped
    capped_events = events(capped.text)
    assert lines_of(capped_events) == ["old 0", "old 1"] and capped_events[-1][1]["reason"] == "max_lines"
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "max_seconds_too_large"
    assert metric.status_code == 400 and metric.json()["error"]["hint"]
