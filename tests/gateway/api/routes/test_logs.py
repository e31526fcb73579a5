"""Per-source log endpoints through the whole app, Loki mocked at the HTTP layer."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.services.times import format_ns
from tests.gateway.conftest import LOKI_TEST_URL
from tests.gateway.loki_query_mock import LokiQueryMock, answering_at, parse_simple_query

BASE_NS = 1_700_000_000 * 1_000_000_000
WINDOW = {"since": format_ns(BASE_NS), "until": format_ns(BASE_NS + 3_600 * 1_000_000_000)}


@pytest.fixture
def settings(settings: GatewaySettings) -> GatewaySettings:
    return settings.model_copy(update={"cache_ttl_seconds": 0.0})


@pytest.fixture
def loki() -> Iterator[LokiQueryMock]:
    mock = LokiQueryMock()
    with answering_at(LOKI_TEST_URL, mock):
        yield mock


def sent_query(mock: LokiQueryMock, index: int = -1) -> str:
    request = [r for r in mock.requests if r.url.path.endswith("query_range")][index]
    return request.url.params["query"]


def all_entries(body: dict[str, Any]) -> list[tuple[str, tuple[tuple[str, str], ...], str]]:
    return [
        (entry[0], tuple(sorted(stream["labels"].items())), entry[1])
        for stream in body["streams"]
        for entry in stream["entries"]
    ]


async def walk(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]
) -> list[Any]:
    pages: list[Any] = []
    cursor = None
    for _ in range(1_000):  # bounded
        answer = await client.get(
            path, params={**params, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body)
        cursor = body["next_cursor"]
        assert body["truncated"] is (cursor is not None)
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize(
    ("direction", "limit"), [("backward", 100), ("forward", 100), ("backward", 33), ("forward", 1000)]
)
async def test_walking_all_pages_returns_3000_entries_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock, direction: str, limit: int
) -> None:
    expected = set()
    for i in range(3_000):
        labels = {
            "source": "gcs",
            "bucket": "b",
            "prefix": "trades",
            "service_name": f"s{i % 4}",
            "level": "info",
        }
        ts = BASE_NS + (i // 250) * 1_000  # 12 timestamps, 250 entries each: more than most pages
        loki.add(labels, ts, f"entry {i}")
        expected.add((format_ns(ts), tuple(sorted(labels.items())), f"entry {i}"))
    loki.add({"source": "gcs", "bucket": "other", "level": "info"}, BASE_NS, "other bucket")
    params = {**WINDOW, "bucket": "b", "limit": limit, "direction": direction}
    pages = await walk(client, "/logs/gcs", params, auth_headers)
    got = [e for page in pages for e in all_entries(page)]
    assert len(got) == 3_000
    assert set(got) == expected
    backward = direction == "backward"
    for page in pages:  # within a stream, entries follow the direction
        for stream in page["streams"]:
            stamps = [e[0] for e in stream["entries"]]
            assert stamps == sorted(stamps, reverse=backward)
    for earlier, later in itertools.pairwise(pages):  # pages never go back in time
        edge = (min if backward else max)(e[0] for e in all_entries(earlier))
        nxt = (max if backward else min)(e[0] for e in all_entries(later))
        assert (nxt <= edge) if backward else (nxt >= edge)
    assert all(len(all_entries(p)) <= limit for p in pages)
    assert len(pages) >= 3_000 // limit


async def test_answer_shape_filters_and_escaping(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock
) -> None:
    labels = {"source": "firestore", "collection": 'x"} |= "', "service_name": "c", "level": "error"}
    loki.add(labels, BASE_NS + 5, "boom password=hunter2", {"doc_id": "d1"})
    loki.add(labels, BASE_NS + 6, "quiet")
    answer = await client.get(
        "/logs/firestore",
        params={**WINDOW, "collection": 'x"} |= "', "level": "error,critical", "q": "boom", "limit": 1},
        headers=auth_headers,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "streams": [
            {
                "labels": labels,
                "entries": [[format_ns(BASE_NS + 5), "boom password=[REDACTED]", {"doc_id": "d1"}]],
            }
        ],
        "truncated": False,
        "next_cursor": None,
        "window": WINDOW,
        "stats": {
            "entries": 1,
            "bytes_processed": len("boom password=hunter2"),
            "lines_processed": 1,
            "exec_time_seconds": 0.001,
            "answer_bytes": len(answer.content),
            "budget_bytes": 65536,  # ANSWER_MAX_BYTES: REST answers have a budget by default
            "lines_clipped": 0,
            "bytes_clipped": 0,
        },
    }
    matchers, filters = parse_simple_query(sent_query(loki))
    assert ("collection", "=", 'x"} |= "') in matchers
    assert ("level", "=~", "error|critical") in matchers
    assert filters == [("|=", "boom")]
    # truncated is computed by asking for one more than the limit
    assert [r for r in loki.requests if r.url.path.endswith("query_range")][-1].url.params["limit"] == "2"


async def test_redaction_can_be_turned_off(
    app: FastAPI,
    settings: GatewaySettings,
    auth_headers: dict[str, str],
    loki: LokiQueryMock,
    client_for: Any,
) -> None:
    loki.add({"source": "pod", "namespace": "gpt", "level": "info"}, BASE_NS, "token=abcdefgh12345")
    plain = create_app(settings.model_copy(update={"redact_log_lines": False}))
    async with client_for(plain) as client:
        body = (
            await client.get("/logs/pods", params={**WINDOW, "namespace": "gpt"}, headers=auth_headers)
        ).json()
    assert body["streams"][0]["entries"][0][1] == "token=abcdefgh12345"


async def test_production_defaults_to_all_sources(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock
) -> None:
    for source in ("gcs", "firestore", "pod", "gateway"):
        loki.add({"source": source, "level": "error"}, BASE_NS + 1, f"from {source}")
    answer = await client.get(
        "/api/monitoring/logs/production",
        params={"hours": 2, "level": "error", "until": WINDOW["until"]},
        headers=auth_headers,
    )
    assert answer.status_code == 200, answer.text
    assert sorted(s["labels"]["source"] for s in answer.json()["streams"]) == ["firestore", "gcs", "pod"]
    answer = await client.get(
        "/api/monitoring/logs/production", params={"source": "pods", **WINDOW}, headers=auth_headers
    )
    assert [s["labels"]["source"] for s in answer.json()["streams"]] == ["pod"]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/logs/gcs", {"level": "fatal"}, 400, "invalid_level"),
        ("/logs/gcs", {"limit": 1001}, 400, "limit_too_large"),
        ("/logs/gcs", {"limit": 0}, 422, "invalid_request"),
        ("/logs/gcs", {"since": "yesterday"}, 400, "invalid_time"),
        ("/logs/gcs", {"since": "3d"}, 400, "range_too_long"),
        ("/logs/gcs", {"hours": 48}, 400, "range_too_long"),
        ("/logs/gcs", {"since": "1h", "hours": 2}, 400, "invalid_time"),
        ("/logs/gcs", {"direction": "sideways"}, 422, "invalid_request"),
        ("/logs/gcs", {"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ("/api/monitoring/logs/production", {"source": "s3"}, 400, "invalid_source"),
        ("/logs/gcs", {"levels": "error"}, 400, "unknown_parameter"),
        ("/api/monitoring/logs/production", {"hour": 2, "q": "x"}, 400, "unknown_parameter"),
        ("/api/monitoring/logs/query_range", {"query": '{a="b"}', "lmit": 5}, 400, "unknown_parameter"),
    ],
)
async def test_bad_parameters_get_an_envelope_with_a_hint(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    loki: LokiQueryMock,
    path: str,
    params: dict[str, Any],
    status: int,
    code: str,
) -> None:
    answer = await client.get(path, params=params, headers=auth_headers)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["hint"]
    assert not [r for r in loki.requests if r.url.path.endswith("query_range")]


def rewritten_cursor(cursor: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    """The cursor with its (unsigned) boundary fields changed, its query digest kept: a forgery."""
    head, _, seen = cursor.partition(".")
    raw = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return base64.urlsafe_b64encode(json.dumps(change(raw)).encode()).decode() + "." + seen


async def first_of_five_lines(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock
) -> dict[str, Any]:
    """The first page (2 lines) of bucket `a`, which holds 5."""
    for i in range(5):
        loki.add({"source": "gcs", "bucket": "a", "level": "info"}, BASE_NS + i, f"l{i}")
    page: dict[str, Any] = (
        await client.get("/logs/gcs", params={**WINDOW, "bucket": "a", "limit": 2}, headers=auth_headers)
    ).json()
    return page


async def test_cursor_cannot_be_replayed_against_another_query(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock
) -> None:
    first = await first_of_five_lines(client, auth_headers, loki)
    assert first["next_cursor"]
    other = await client.get(
        "/logs/gcs",
        params={**WINDOW, "bucket": "b", "limit": 2, "cursor": first["next_cursor"]},
        headers=auth_headers,
    )
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_cursor"
    # a tampered cursor (same digest, garbage boundary) is refused too
    tampered = rewritten_cursor(first["next_cursor"], lambda raw: {**raw, "b": "not-a-number"})
    answer = await client.get(
        "/logs/gcs", params={**WINDOW, "bucket": "a", "limit": 2, "cursor": tampered}, headers=auth_headers
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_cursor"


async def test_repeated_identical_queries_are_cached_per_key(
    app: FastAPI,
    settings: GatewaySettings,
    auth_headers: dict[str, str],
    loki: LokiQueryMock,
    client_for: Any,
) -> None:
    loki.add({"source": "gcs", "bucket": "a", "level": "info"}, BASE_NS, "cached line")
    cached_app = create_app(settings.model_copy(update={"cache_ttl_seconds": 60.0}))
    async with client_for(cached_app) as client:
        params = {**WINDOW, "bucket": "a"}
        first = await client.get("/logs/gcs", params=params, headers=auth_headers)
        second = await client.get("/logs/gcs", params=params, headers=auth_headers)
        third = await client.get("/logs/gcs", params={**params, "limit": 5}, headers=auth_headers)
    assert first.json() == second.json() == third.json()
    assert len([r for r in loki.requests if r.url.path.endswith("query_range")]) == 2


async def test_a_forged_cursor_cannot_widen_the_window(
    client: httpx.AsyncClient, auth_headers: dict[str, str], loki: LokiQueryMock
) -> None:
    first = await first_of_five_lines(client, auth_headers, loki)
    # the cursor is not signed: same query digest, far end pushed back a year
    forged = rewritten_cursor(
        first["next_cursor"], lambda raw: {**raw, "f": str(int(raw["b"]) - 365 * 24 * 3_600 * 1_000_000_000)}
    )
    sent = len(loki.requests)
    answer = await client.get(
        "/logs/gcs", params={**WINDOW, "bucket": "a", "limit": 2, "cursor": forged}, headers=auth_headers
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_cursor"
    assert len(loki.requests) == sent


async def test_malformed_loki_streams_give_502_not_500(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    result = [{"stream": {}, "values": [[1]]}]
    body = {"status": "success", "data": {"resultType": "streams", "result": result}}
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=LOKI_TEST_URL).mock(return_value=httpx.Response(200, json=body))
        answer = await client.get("/logs/gcs", params={**WINDOW, "bucket": "a"}, headers=auth_headers)
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "loki_error"


@pytest.mark.parametrize("data", [{"source": "gcs"}, 7, ["gcs", 3]])
async def test_malformed_label_lists_give_502_not_500(
    client: httpx.AsyncClient, auth_headers: dict[str, str], data: object
) -> None:
    body = {"status": "success", "data": data}
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=LOKI_TEST_URL).mock(return_value=httpx.Response(200, json=body))
        for path in ("/api/monitoring/logs/labels", "/api/monitoring/logs/label/source/values"):
            answer = await client.get(path, params=WINDOW, headers=auth_headers)
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["code"] == "loki_error"
