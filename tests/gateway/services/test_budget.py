"""Byte-budgeted log answers on REST, on the real Loki: the page ends at the budget with an exact
cursor, long lines are clipped with a marker, and a budget over the maximum is refused."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from gateway.errors import Failure
from gateway.main import create_app
from gateway.services.budget import Budget, choose_budget, clip_line
from tests.gateway.conftest import KeysFile, make_settings, running_client
from tests.real_loki import RealLoki, run_id

NS = 1_000_000_000
QUERY_RANGE = "/api/monitoring/logs/query_range"


def test_clip_line_cuts_whole_characters_and_says_how_much() -> None:
    text = "é" * 100  # 200 bytes
    clipped, cut = clip_line(text, 51)
    assert clipped.startswith("é" * 25) and not clipped.startswith("é" * 26)
    assert cut == 150 and clipped.endswith("…[clipped 150 of 200 bytes]")
    assert clip_line("short", 51) == ("short", 0)


def test_a_budget_over_the_maximum_is_refused_and_the_line_share_is_bounded() -> None:
    with pytest.raises(Failure) as refused:
        choose_budget(10_000, 4096, 8192, 4096)
    assert refused.value.code == "max_bytes_too_large" and "8192" in refused.value.hint
    assert Budget(2048, 4096).line_bytes == 512
    assert Budget(1 << 20, 4096).line_bytes == 4096


async def test_rest_pages_end_at_the_budget_with_an_exact_cursor(real_loki: RealLoki, tmp_path: Any) -> None:
    rid = run_id("budget")
    base = time.time_ns() - 10 * 60 * NS
    lines = [f"line {i:03d} " + "y" * 200 for i in range(60)]
    lines[7] = "line 007 " + "z" * 20_000
    real_loki.push(
        [
            (
                {"source": "gcs", "level": "info", "run_id": rid},
                [(base + i * NS // 10, line) for i, line in enumerate(lines)],
            )
        ]
    )
    keys_file = KeysFile(tmp_path / "keys.yaml")
    key = keys_file.add("reader", ["logs:read"])
    app = create_app(
        make_settings(gateway_api_keys_file=keys_file.path, loki_url=real_loki.url, cache_ttl_seconds=0.0)
    )
    params = {
        "query": f'{{run_id="{rid}"}}',
        "limit": 1000,
        "direction": "forward",
        "max_bytes": 4096,
        "since": str(base - NS),
        "until": str(base + 60 * NS),
    }
    seen: list[str] = []
    pages = 0
    async with running_client(app) as client:
        cursor = None
        while True:
            answer = await client.get(
                QUERY_RANGE,
                params={**params, **({"cursor": cursor} if cursor else {})},
                headers={"x-api-key": key},
            )
            assert answer.status_code == 200, answer.text
            assert len(answer.content) <= 4096
            body = answer.json()
            assert (
                body["stats"]["answer_bytes"] == len(orjson.dumps(body))
                and body["stats"]["budget_bytes"] == 4096
            )
            pages += 1
            seen += [entry[1] for stream in body["streams"] for entry in stream["entries"]]
            cursor = body["next_cursor"]
            assert body["truncated"] is (cursor is not None)
            if cursor is None:
                break
        by_default = await client.get(
            QUERY_RANGE,
            params={k: v for k, v in params.items() if k != "max_bytes"},
            headers={"x-api-key": key},
        )
        too_big = await client.get(
            QUERY_RANGE, params={**params, "max_bytes": 100 * 1024 * 1024}, headers={"x-api-key": key}
        )
        gcs = await client.get(
            "/logs/gcs",
            params={"max_bytes": 2048, "since": params["since"], "until": params["until"], "q": "line 00"},
            headers={"x-api-key": key},
        )
    assert pages >= 4  # limit 1000 alone: one page
    assert len(seen) == 60 and [line[:8] for line in seen] == [line[:8] for line in lines]
    clipped = seen[7]
    assert clipped.endswith("…[clipped 18985 of 20009 bytes]") and len(clipped.encode()) < 1100
    assert seen[:7] == lines[:7] and seen[8:] == lines[8:]
    # without max_bytes a REST answer has the default budget (64 KiB), which holds all 60 lines;
    # the long one is clipped at ANSWER_MAX_LINE_BYTES (4096)
    full = by_default.json()
    entries = [e for s in full["streams"] for e in s["entries"]]
    assert len(entries) == 60 and full["stats"]["budget_bytes"] == 65536 and full["next_cursor"] is None
    assert entries[7][1].endswith("…[clipped 15913 of 20009 bytes]") and full["stats"]["lines_clipped"] == 1
    assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "max_bytes_too_large"
    assert gcs.status_code == 200 and len(gcs.content) <= 2048
