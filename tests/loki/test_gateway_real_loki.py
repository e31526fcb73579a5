"""The gateway in front of the real Loki 3.7.6: every Loki call it makes (query_range for logs
and metrics, query, labels, label values, index/stats, patterns, iter_lines), the answer shape of
DESIGN.md (one stream per real label set, metadata as each entry's third element), and exact
cursor pagination where entries share timestamps. Each test plants its own run id as `bucket`
(or `run_id`), so all share the session's Loki."""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from itertools import pairwise
from typing import Any

import httpx
import pytest

from gateway.errors import as_api_error
from gateway.main import create_app
from gateway.security import generate_key
from gateway.services.loki import LokiClient, TooManyAtOneTimestamp
from gateway.services.times import format_ns
from tests.gateway.conftest import make_settings, running_client
from tests.real_loki import RealLoki, run_id

GCS_OBJECT = "trades/2026-12-05.jsonl"
SECOND = 1_000_000_000
QUERY_RANGE = "/api/monitoring/logs/query_range"


def gcs_labels(bucket: str, level: str) -> dict[str, str]:
    """DESIGN.md's GCS stream labels."""
    return {"source": "gcs", "service_name": "trades", "bucket": bucket, "prefix": "trades", "level": level}


def push(loki: RealLoki, streams: Iterable[tuple[Mapping[str, str], list[list[Any]]]]) -> None:
    """Push `(labels, [[ts_ns, line, metadata?], ...])` streams, metadata as Loki's structured metadata."""
    body = {
        "streams": [
            {"stream": dict(labels), "values": [[str(v[0]), *v[1:]] for v in values]}
            for labels, values in streams
        ]
    }
    loki.push_raw(body).raise_for_status()


ALL_OF_IT = 4 << 20  # ANSWER_MAX_BYTES_LIMIT: pages that test `limit` end there, not at the budget


def window(first_ns: int, last_ns: int) -> dict[str, str]:
    return {"since": format_ns(first_ns - SECOND), "until": format_ns(last_ns + SECOND)}


@pytest.fixture
async def gateway(real_loki: RealLoki) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    key = generate_key()
    app = create_app(make_settings(ai_monitoring_api_key=key, loki_url=real_loki.url))
    async with running_client(app) as client:
        yield client, {"x-api-key": key}


async def walk(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """Follow next_cursor to the end: every (level, ts, line) returned, and every page."""
    got: list[tuple[str, str, str]] = []
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        answer = await client.get(
            path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append(page)
        got += [(s["labels"].get("level", ""), e[0], e[1]) for s in page["streams"] for e in s["entries"]]
        assert page["truncated"] == (page["next_cursor"] is not None)
        cursor = page["next_cursor"]
        if cursor is None:
            return got, pages
    raise AssertionError("pagination did not end")


def assert_pages_in_order(pages: list[dict[str, Any]], direction: str) -> None:
    """Streams group a page's entries, so order shows between pages: none goes back in time."""
    spans = [sorted(e[0] for s in p["streams"] for e in s["entries"]) for p in pages]
    for earlier, later in pairwise(spans):
        if direction == "forward":
            assert earlier[-1] <= later[0]
        else:
            assert earlier[0] >= later[-1]


async def test_gcs_page_of_1000_entries_from_one_object_is_one_stream_per_level(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = gateway
    bucket = run_id("gcs")
    base = time.time_ns() - 60 * SECOND
    streams: dict[str, list[list[Any]]] = {"info": [], "error": []}
    for i in range(1000):
        level = "error" if i % 10 == 0 else "info"
        meta = {"object": GCS_OBJECT, "generation": "1733400000000001", "line_no": str(i + 1)}
        streams[level].append([base + i * 1000, f'{{"n":{i},"msg":"trade {i}"}}', meta])
    push(real_loki, [(gcs_labels(bucket, level), values) for level, values in streams.items()])
    # a byte budget that holds all 1,000 lines: the page ends at the limit
    params = {"bucket": bucket, "limit": 1000, "max_bytes": ALL_OF_IT, **window(base, base + 999_000)}

    answer = await client.get("/logs/gcs", params=params, headers=headers)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["truncated"] is False and body["next_cursor"] is None
    assert sorted(s["labels"]["level"] for s in body["streams"]) == ["error", "info"]
    for stream in body["streams"]:
        level = stream["labels"]["level"]
        assert stream["labels"] == gcs_labels(bucket, level)  # no metadata among the labels
        assert len(stream["entries"]) == len(streams[level])
        for ts, line, meta in stream["entries"]:
            i = int(meta["line_no"]) - 1
            assert (ts, line) == (format_ns(base + i * 1000), f'{{"n":{i},"msg":"trade {i}"}}')
            assert meta == {"object": GCS_OBJECT, "generation": "1733400000000001", "line_no": str(i + 1)}
    assert body["stats"]["entries"] == 1000

    # the same entries through pages, both directions: every entry once, metadata on each
    for direction in ("backward", "forward"):
        got, pages = await walk(
            client, "/logs/gcs", {**params, "limit": 300, "direction": direction}, headers
        )
        assert len(pages) == 4 and [len(p["streams"]) for p in pages] == [2, 2, 2, 2]
        assert len(got) == 1000 and len(set(got)) == 1000
        assert_pages_in_order(pages, direction)
        assert all(len(e) == 3 for p in pages for s in p["streams"] for e in s["entries"])


@pytest.mark.parametrize("direction", ["backward", "forward"])
async def test_cursor_walks_3000_entries_sharing_one_timestamp(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]], direction: str
) -> None:
    client, headers = gateway
    bucket = run_id("tie")
    ts = time.time_ns() - 30 * SECOND
    values = [[ts, f"same instant {i:04d}", {"object": GCS_OBJECT, "line_no": str(i)}] for i in range(3000)]
    push(real_loki, [(gcs_labels(bucket, "info"), values)])

    got, pages = await walk(
        client,
        "/logs/gcs",
        {"bucket": bucket, "limit": 1000, "direction": direction, "max_bytes": ALL_OF_IT, **window(ts, ts)},
        headers,
    )

    assert Counter(line for _, _, line in got) == Counter(f"same instant {i:04d}" for i in range(3000))
    assert [sum(len(s["entries"]) for s in p["streams"]) for p in pages] == [1000, 1000, 1000]
    assert pages[-1]["truncated"] is False


@pytest.mark.parametrize("direction", ["backward", "forward"])
async def test_cursor_walks_two_streams_with_shared_timestamps(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]], direction: str
) -> None:
    client, headers = gateway
    bucket = run_id("two")
    base = time.time_ns() - 30 * SECOND
    info, error = [], []
    for i in range(600):
        ts = base + (i // 4) * 1000  # four entries per timestamp in each stream
        info.append([ts, f"info {i}", {"line_no": str(i)}])
        error.append([ts, f"error {i}", {"line_no": str(i)}])
    push(real_loki, [(gcs_labels(bucket, "info"), info), (gcs_labels(bucket, "error"), error)])
    expected = Counter(
        [("info", format_ns(v[0]), v[1]) for v in info] + [("error", format_ns(v[0]), v[1]) for v in error]
    )

    for limit in (7, 250):
        params = {"bucket": bucket, "limit": limit, "direction": direction, **window(base, base + 150_000)}
        got, pages = await walk(client, "/logs/gcs", params, headers)
        assert Counter(got) == expected, limit
        assert_pages_in_order(pages, direction)


async def test_logql_proxy_log_query_carries_parsed_labels_as_metadata(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = gateway
    rid = run_id("json")
    base = time.time_ns() - 20 * SECOND
    push(
        real_loki,
        [
            (
                {"source": "gcs", "service_name": "trades", "run_id": rid, "level": "info"},
                [
                    [base, '{"user":"ann","qty":"3"}', {"object": GCS_OBJECT}],
                    [base + 1, '{"user":"bob","qty":"4"}'],
                ],
            )
        ],
    )
    params = {"query": f'{{run_id="{rid}"}} | json', "direction": "forward", **window(base, base)}

    answer = await client.get(QUERY_RANGE, params=params, headers=headers)

    assert answer.status_code == 200, answer.text
    streams = answer.json()["streams"]
    assert len(streams) == 1 and streams[0]["labels"] == {
        "source": "gcs",
        "service_name": "trades",
        "run_id": rid,
        "level": "info",
    }
    assert [e[2] for e in streams[0]["entries"]] == [
        {"object": GCS_OBJECT, "user": "ann", "qty": "3"},
        {"user": "bob", "qty": "4"},
    ]


async def test_metric_queries_are_unaffected_by_categorized_labels(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = gateway
    rid = run_id("metric")
    base = time.time_ns() - 20 * SECOND
    push(
        real_loki,
        [
            (
                {"source": "gcs", "service_name": "trades", "run_id": rid, "level": "error"},
                [[base + i, f"failure {i}", {"object": f"trades/{i % 2}.jsonl"}] for i in range(5)],
            )
        ],
    )
    query = f'sum by (object) (count_over_time({{run_id="{rid}"}}[5m]))'

    ranged = await client.get(
        QUERY_RANGE, params={"query": query, "step": "60s", **window(base, base)}, headers=headers
    )
    instant = await client.get(
        "/api/monitoring/logs/query",
        params={"query": query, "time": format_ns(base + SECOND)},
        headers=headers,
    )

    assert ranged.status_code == 200, ranged.text
    assert ranged.json()["result_type"] == "matrix"
    assert {s["metric"]["object"] for s in ranged.json()["result"]} == {"trades/0.jsonl", "trades/1.jsonl"}
    assert instant.status_code == 200, instant.text
    assert instant.json()["result_type"] == "vector"
    counts = {s["metric"]["object"]: s["value"][1] for s in instant.json()["result"]}
    assert counts == {"trades/0.jsonl": "3", "trades/1.jsonl": "2"}


async def test_instant_log_query_relays_lokis_refusal(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = gateway
    answer = await client.get(
        "/api/monitoring/logs/query", params={"query": f'{{run_id="{run_id()}"}}'}, headers=headers
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "loki_bad_request"
    assert "not supported as an instant query" in answer.json()["error"]["message"]


async def test_labels_label_values_stats_and_patterns(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    client, headers = gateway
    bucket = run_id("lbl")
    base = time.time_ns() - 20 * SECOND
    lines = [
        [base + i * 1000, f"user {i} logged in after {i * 3} ms", {"line_no": str(i)}] for i in range(60)
    ]
    push(real_loki, [(gcs_labels(bucket, "info"), lines), (gcs_labels(bucket, "warn"), lines[:3])])
    selector = f'{{bucket="{bucket}"}}'
    span = window(base, base + 60_000)

    labels = await client.get(
        "/api/monitoring/logs/labels", params={"query": selector, **span}, headers=headers
    )
    values = await client.get(
        "/api/monitoring/logs/label/level/values", params={"query": selector, **span}, headers=headers
    )
    stats = await client.get(
        "/api/monitoring/logs/stats", params={"query": selector, **span}, headers=headers
    )

    assert labels.status_code == 200, labels.text
    assert labels.json()["labels"] == ["bucket", "level", "prefix", "service_name", "source"]  # no metadata
    assert values.json() == {"label": "level", "values": ["info", "warn"], "window": span}
    assert stats.status_code == 200, stats.text
    # "note" appears when the index still reports 0 entries of lines Loki already serves (issue 19)
    assert set(stats.json()) - {"note"} == {"query", "streams", "chunks", "entries", "bytes", "window"}
    assert stats.json()["query"] == selector
    found: list[dict[str, Any]] = []
    # patterns count lines in 10 s buckets: the window must hold the bucket's start
    wide = window(base - 60 * SECOND, base + 60 * SECOND)
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:  # the pattern ingester needs a moment
        patterns = await client.get(
            "/api/monitoring/logs/patterns", params={"query": selector, **wide}, headers=headers
        )
        assert patterns.status_code == 200, patterns.text
        found = patterns.json()["patterns"]
        await asyncio.sleep(0.5)
    assert [p["pattern"] for p in found] == ["user <_> logged in after <_> ms"]
    assert sum(count for _, count in found[0]["samples"]) == 63  # both streams


async def test_empty_label_lists_are_empty_not_502(
    real_loki: RealLoki, gateway: tuple[httpx.AsyncClient, dict[str, str]]
) -> None:
    """Loki answers {"status":"success"} without `data` when nothing matches."""
    client, headers = gateway
    nothing = f'{{bucket="{run_id("none")}"}}'
    labels = await client.get("/api/monitoring/logs/labels", params={"query": nothing}, headers=headers)
    values = await client.get(
        "/api/monitoring/logs/label/level/values", params={"query": nothing}, headers=headers
    )
    unknown = await client.get(f"/api/monitoring/logs/label/{run_id('n')}/values", headers=headers)
    assert (labels.status_code, labels.json()["labels"]) == (200, [])
    assert (values.status_code, values.json()["label"], values.json()["values"]) == (200, "level", [])
    assert unknown.status_code == 200 and unknown.json()["values"] == []


async def test_the_advertised_maximum_limit_is_one_loki_accepts(real_loki: RealLoki) -> None:
    """The gateway advertises query_max_limit; it used to ask Loki for one more than that, which
    Loki refuses once it equals max_entries_limit_per_query (5000 by default, 10000 here)."""
    key = generate_key()
    loki_max = 10_000  # ops-stack/loki/loki.yaml max_entries_limit_per_query
    settings = make_settings(ai_monitoring_api_key=key, loki_url=real_loki.url, query_max_limit=loki_max)
    rid = run_id("max")
    base = time.time_ns() - 60 * SECOND
    push(
        real_loki,
        [
            (
                {"source": "gcs", "service_name": "t", "run_id": rid, "level": "info"},
                [[base + i * 1000, f"line {i}"] for i in range(loki_max)],
            )
        ],
    )
    params = {
        "query": f'{{run_id="{rid}"}}',
        "limit": loki_max,
        "max_bytes": ALL_OF_IT,
        "direction": "forward",
        **window(base, base + 10**7),
    }
    async with running_client(create_app(settings)) as client:
        full = await client.get(QUERY_RANGE, params=params, headers={"x-api-key": key})
        assert full.status_code == 200, full.text
        assert sum(len(s["entries"]) for s in full.json()["streams"]) == loki_max
        assert (full.json()["truncated"], full.json()["next_cursor"]) == (False, None)  # exact, not a guess

        push(
            real_loki,
            [
                (
                    {"source": "gcs", "service_name": "t", "run_id": rid, "level": "info"},
                    [[base + loki_max * 1000, "one more"]],
                )
            ],
        )
        params["until"] = format_ns(base + 10**7 + 2 * SECOND)  # another request: not a cached answer
        more = await client.get(QUERY_RANGE, params=params, headers={"x-api-key": key})
        assert more.status_code == 200, more.text
        assert more.json()["truncated"] is True
        rest = await client.get(
            QUERY_RANGE, params={**params, "cursor": more.json()["next_cursor"]}, headers={"x-api-key": key}
        )
        assert rest.status_code == 200, rest.text
        assert [e[1] for s in rest.json()["streams"] for e in s["entries"]] == ["one more"]
        assert rest.json()["truncated"] is False


async def test_a_deeply_nested_cursor_is_invalid_cursor_not_500(
    gateway: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, headers = gateway
    cursor = base64.urlsafe_b64encode(b"[" * 3000).decode()
    answer = await client.get("/logs/gcs", params={"bucket": "b", "cursor": cursor}, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_cursor"


async def test_iter_lines_reads_categorized_answers(real_loki: RealLoki) -> None:
    """The summary's reader pages with query_range too: metadata does not split or drop lines."""
    rid = run_id("iter")
    base = time.time_ns() - 30 * SECOND
    values = [[base + (i // 50), f"l{i}", {"line_no": str(i)}] for i in range(400)]
    push(real_loki, [({"source": "pod", "service_name": "s", "run_id": rid, "level": "info"}, values)])
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, make_settings(loki_url=real_loki.url))
        got = [
            (ts, labels["run_id"], line)
            async for ts, labels, line in loki.iter_lines(
                f'{{run_id="{rid}"}}', start_ns=base, end_ns=base + SECOND, page_size=30
            )
        ]
    assert sorted(line for _, _, line in got) == sorted(f"l{i}" for i in range(400))
    assert [ts for ts, _, _ in got] == sorted(ts for ts, _, _ in got)


async def test_more_entries_at_one_timestamp_than_loki_returns_is_a_clear_422(real_loki: RealLoki) -> None:
    """Loki returns at most max_entries_limit_per_query entries, always the same ones at a shared
    timestamp: past that many at one instant no page can move on. Scaled down here (a gateway
    that advertises 20): the walk stops with a hint instead of repeating a page or ending early."""
    key = generate_key()
    settings = make_settings(
        ai_monitoring_api_key=key, loki_url=real_loki.url, query_max_limit=20, logs_max_limit=20
    )
    bucket = run_id("over")
    ts = time.time_ns() - 30 * SECOND
    push(real_loki, [(gcs_labels(bucket, "info"), [[ts, f"same {i:02d}"] for i in range(30)])])
    params = {"bucket": bucket, "limit": 20, **window(ts, ts)}
    async with running_client(create_app(settings)) as client:
        first = await client.get("/logs/gcs", params=params, headers={"x-api-key": key})
        assert first.status_code == 200, first.text
        assert first.json()["truncated"] is True  # 20 of 30, and it cannot ask for a 21st
        second = await client.get(
            "/logs/gcs", params={**params, "cursor": first.json()["next_cursor"]}, headers={"x-api-key": key}
        )
    assert second.status_code == 422, second.text
    assert second.json()["error"]["code"] == "too_many_at_one_timestamp"


async def test_iter_lines_never_asks_loki_for_more_than_the_maximum(real_loki: RealLoki) -> None:
    """The summary's reader asked for page_size plus every entry already read at the boundary,
    past Loki's max_entries_limit_per_query when enough entries share a timestamp (a 400). Scaled
    down: a gateway whose maximum is 20 reads the 20 Loki returns, then says why it stops."""
    rid = run_id("itermax")
    ts = time.time_ns() - 30 * SECOND
    push(
        real_loki,
        [({"source": "pod", "service_name": "s", "run_id": rid}, [[ts, f"l{i:02d}"] for i in range(30)])],
    )
    got: list[str] = []
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, make_settings(loki_url=real_loki.url, query_max_limit=20, logs_max_limit=20))
        with pytest.raises(TooManyAtOneTimestamp) as err:
            async for _, _, line in loki.iter_lines(
                f'{{run_id="{rid}"}}', start_ns=ts, end_ns=ts + 1, page_size=15
            ):
                got.append(line)
    assert len(got) == len(set(got)) == 20
    assert as_api_error(err.value).status == 422
