"""The LogQL proxy through the whole app: label policy and tenant per key, forbidden headers,
guardrails, max bytes, and Loki failures mapped to envelopes. Loki is mocked at the HTTP layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from gateway.main import create_app
from gateway.services.logql import reach_back_ns, scan_query
from gateway.services.pagination import Cursor, query_digest
from gateway.services.times import format_ns
from tests.conftest import free_port
from tests.gateway.conftest import LOKI_TEST_URL, KeysFile, make_settings
from tests.gateway.loki_answers import recorded_response, recorded_streams, recorded_vector
from tests.gateway.loki_query_mock import LokiQueryMock, answering_at, parse_simple_query

BASE_NS = 1_700_000_000 * 1_000_000_000
WINDOW = {"since": format_ns(BASE_NS), "until": format_ns(BASE_NS + 3_600 * 1_000_000_000)}
QUERY_RANGE = "/api/monitoring/logs/query_range"


@pytest.fixture
def loki() -> Iterator[LokiQueryMock]:
    mock = LokiQueryMock()
    for source in ("gcs", "firestore"):
        for i in range(3):
            mock.add(
                {"source": source, "service_name": "trades", "level": "error"}, BASE_NS + i, f"{source} {i}"
            )
    with answering_at(LOKI_TEST_URL, mock):
        yield mock


@pytest.fixture
def keys(keys_file: KeysFile) -> dict[str, str]:
    return {
        "gcs_only": keys_file.add(
            "gcs-only", ["logs:read"], tenant="team-gcs", label_policy='{source="gcs"}'
        ),
        "open": keys_file.add("open", ["logs:read"]),
        "summary": keys_file.add("summarise", ["summary"]),
    }


@pytest.fixture
async def proxy(keys: dict[str, str], keys_file: KeysFile, client_for: Callable[..., Any]) -> Any:
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, cache_ttl_seconds=0.0))
    async with client_for(app) as client:
        yield client


async def test_policy_and_tenant_reach_loki_and_client_headers_do_not(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    answer = await proxy.get(
        QUERY_RANGE,
        params={"query": '{service_name="trades"} |= "0"', **WINDOW},
        headers={"x-api-key": keys["gcs_only"], "X-Scope-OrgID": "someone-else", "X-Prom-Label-Policy": "x"},
    )
    assert answer.status_code == 200, answer.text
    assert [s["labels"]["source"] for s in answer.json()["streams"]] == ["gcs"]
    sent = loki.requests[-1]
    matchers, filters = parse_simple_query(sent.url.params["query"])
    assert matchers == [("service_name", "=", "trades"), ("source", "=", "gcs")]
    assert filters == [("|=", "0")]
    assert sent.headers.get_list("X-Scope-OrgID") == ["team-gcs"]
    assert "X-Prom-Label-Policy" not in sent.headers


async def test_a_key_without_policy_sees_everything_and_sends_no_tenant(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    answer = await proxy.get(
        QUERY_RANGE,
        params={"query": '{service_name="trades"}', **WINDOW},
        headers={"x-api-key": keys["open"], "X-Scope-OrgID": "someone-else"},
    )
    assert sorted(s["labels"]["source"] for s in answer.json()["streams"]) == ["firestore", "gcs"]
    assert "X-Scope-OrgID" not in loki.requests[-1].headers


async def test_policy_cannot_be_escaped_with_a_conflicting_matcher(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    answer = await proxy.get(
        QUERY_RANGE,
        params={"query": '{source="firestore"}', **WINDOW},
        headers={"x-api-key": keys["gcs_only"]},
    )
    assert answer.status_code == 200 and answer.json()["streams"] == []


async def test_labels_and_values_are_scoped_by_the_policy(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    headers = {"x-api-key": keys["gcs_only"]}
    values = await proxy.get("/api/monitoring/logs/label/source/values", params=WINDOW, headers=headers)
    assert values.json() == {"label": "source", "values": ["gcs"], "window": WINDOW}
    assert loki.requests[-1].url.params["query"] == '{source="gcs"}'
    names = await proxy.get("/api/monitoring/logs/labels", params=WINDOW, headers=headers)
    assert names.json() == {"labels": ["level", "service_name", "source"], "window": WINDOW}
    bad = await proxy.get("/api/monitoring/logs/label/bad-name/values", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_label"


async def test_stats_and_patterns_carry_the_policy(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    headers = {"x-api-key": keys["gcs_only"]}
    stats = await proxy.get(
        "/api/monitoring/logs/stats", params={"query": '{level="error"}', **WINDOW}, headers=headers
    )
    assert stats.json() == {
        "query": '{level="error", source="gcs"}',
        "streams": 1,
        "chunks": 1,
        "entries": 3,
        "bytes": sum(len(f"gcs {i}") for i in range(3)),
        "window": WINDOW,
    }
    patterns = await proxy.get(
        "/api/monitoring/logs/patterns", params={"query": '{level="error"}', **WINDOW}, headers=headers
    )
    assert patterns.status_code == 200 and len(patterns.json()["patterns"][0]["samples"]) == 3
    assert loki.requests[-1].url.params["query"] == '{level="error", source="gcs"}'


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"query": "{}"}, "query_too_broad"),
        ({"query": '{source!="gcs"}'}, "query_too_broad"),
        ({"query": '{source=~".*"}'}, "query_too_broad"),
        ({"query": '{source=~".+"} |= "x"'}, "query_too_broad"),
        ({"query": 'sum(count_over_time({source="gcs"}[7d]))'}, "range_too_long"),
        ({"query": '{source="gcs"}', "since": "2d"}, "range_too_long"),
        ({"query": '{source="gcs"', "hours": 1}, "invalid_query"),
        ({"query": '{source="gcs"}', "limit": 5001}, "limit_too_large"),
        ({"query": '{source="gcs"}', "step": "soon"}, "invalid_time"),
    ],
)
async def test_guardrails_refuse_before_loki_is_asked(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock, params: dict[str, Any], code: str
) -> None:
    answer = await proxy.get(QUERY_RANGE, params=params, headers={"x-api-key": keys["open"]})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["hint"]
    assert loki.requests == []


async def test_max_bytes_is_checked_against_index_stats(
    keys: dict[str, str], keys_file: KeysFile, loki: LokiQueryMock, client_for: Callable[..., Any]
) -> None:
    app = create_app(
        make_settings(gateway_api_keys_file=keys_file.path, query_max_bytes=10, cache_ttl_seconds=0)
    )
    async with client_for(app) as client:
        headers = {"x-api-key": keys["open"]}
        big = await client.get(QUERY_RANGE, params={"query": '{level="error"}', **WINDOW}, headers=headers)
        small = await client.get(
            QUERY_RANGE,
            params={"query": '{source="gcs"}', "until": format_ns(BASE_NS + 2), "hours": 1},
            headers=headers,
        )
    assert big.status_code == 413 and big.json()["error"]["code"] == "query_too_large"
    assert [r.url.path for r in loki.requests[:1]] == ["/loki/api/v1/index/stats"]
    assert small.status_code == 200, small.text
    assert len(all_lines(small.json())) == 2


async def test_max_bytes_also_bounds_instant_queries_cursor_pages_and_summaries(
    keys: dict[str, str], keys_file: KeysFile, loki: LokiQueryMock, client_for: Callable[..., Any]
) -> None:
    """Each reads the streams of {level="error"} (six lines, over 10 bytes) somewhere: an instant
    metric query over its range and offset, a page whose cursor was made up rather than handed
    out (a cursor is not signed), a summary over its window and the one before."""
    settings = make_settings(gateway_api_keys_file=keys_file.path, query_max_bytes=10, cache_ttl_seconds=0)
    selector = '{level="error"}'
    metric = f"sum(count_over_time({selector}[30m] offset 45m))"
    half, hour = 1_800 * 10**9, 3_600 * 10**9
    summary = {"selector": selector, "start": format_ns(BASE_NS + half), "end": format_ns(BASE_NS + hour)}
    made_up = Cursor(query_digest(selector, "backward", None), BASE_NS + hour, BASE_NS).encode()
    async with client_for(create_app(settings)) as client:
        headers = {"x-api-key": keys["open"]}
        answers = [
            await client.get(
                "/api/monitoring/logs/query",
                params={"query": metric, "time": str(BASE_NS + hour)},
                headers=headers,
            ),
            await client.get(QUERY_RANGE, params={"query": selector, "cursor": made_up}, headers=headers),
            await client.post("/logs/summary", json=summary, headers={"x-api-key": keys["summary"]}),
        ]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(413, "query_too_large")] * 3
    assert {r.url.path for r in loki.requests} == {"/loki/api/v1/index/stats"}  # nothing else was run
    starts = {int(r.url.params["start"]) for r in loki.requests}
    assert BASE_NS + hour - 75 * 60 * 10**9 in starts  # the instant query: its range plus its offset
    assert BASE_NS in starts  # the cursor's window, and the summary's previous window


def test_reach_back_is_the_longest_range_plus_the_longest_offset() -> None:
    minute = 60 * 10**9
    assert reach_back_ns(scan_query('{a="1"} |= "[30d]"')) == 0  # a log query; text in a string
    assert reach_back_ns(scan_query('rate({a="1"}[5m] offset 1h) / rate({a="1"}[10m])')) == 70 * minute


def all_lines(body: dict[str, Any]) -> list[str]:
    return [e[1] for s in body["streams"] for e in s["entries"]]


async def test_instant_metric_query_passes_the_result_through(
    proxy: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    vector = {"resultType": "vector", "result": [{"metric": {"source": "gcs"}, "value": [1700000000, "3"]}]}
    with respx.mock() as router:
        route = router.get(f"{LOKI_TEST_URL}/loki/api/v1/query").mock(
            return_value=recorded_vector(vector["result"])
        )
        answer = await proxy.get(
            "/api/monitoring/logs/query",
            params={"query": 'sum by (source) (count_over_time({level="error"}[1h]))', "time": "1700000000"},
            headers={"x-api-key": keys["gcs_only"]},
        )
    assert answer.status_code == 200, answer.text
    shown = [{"metric": {"source": "gcs"}, "value": ["2023-11-14T22:13:20Z", "3"]}]  # 1700000000 s
    assert answer.json()["result"] == shown and answer.json()["result_type"] == "vector"
    hour_before = {"since": format_ns(BASE_NS - 3600 * 10**9), "until": format_ns(BASE_NS)}
    assert answer.json()["window"] == hour_before
    sent = route.calls.last.request.url.params
    assert sent["query"] == 'sum by (source) (count_over_time({level="error", source="gcs"}[1h]))'
    assert sent["time"] == str(BASE_NS)


@pytest.mark.parametrize(
    ("response", "status", "code", "message"),
    [
        (recorded_response("error_parse"), 400, "loki_bad_request", "syntax error"),
        (httpx.Response(500, text="internal"), 502, "loki_error", "500"),
        (httpx.Response(503, text="too many unhealthy instances in the ring"), 502, "loki_error", "ring"),
        (httpx.Response(429, text="too many outstanding requests"), 503, "loki_busy", "outstanding"),
    ],
)
async def test_loki_errors_become_envelopes(
    proxy: httpx.AsyncClient,
    keys: dict[str, str],
    response: httpx.Response,
    status: int,
    code: str,
    message: str,
) -> None:
    with respx.mock() as router:
        router.route(url__startswith=LOKI_TEST_URL).mock(return_value=response)
        answer = await proxy.get(
            QUERY_RANGE, params={"query": '{source="gcs"}'}, headers={"x-api-key": keys["open"]}
        )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code and message in answer.json()["error"]["message"]
    assert ("retry-after" in answer.headers) is (code == "loki_busy")


async def test_loki_down_and_slow(
    keys: dict[str, str], keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    down = create_app(
        make_settings(gateway_api_keys_file=keys_file.path, loki_url=f"http://127.0.0.1:{free_port()}")
    )
    async with client_for(down) as client:
        answer = await client.get("/logs/gcs", headers={"x-api-key": keys["open"]})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "loki_unavailable" and answer.json()["error"]["hint"]

    with respx.mock() as router:
        router.route(url__startswith=LOKI_TEST_URL).mock(side_effect=httpx.ReadTimeout("slow"))
        slow = create_app(make_settings(gateway_api_keys_file=keys_file.path, loki_timeout_seconds=0.5))
        async with client_for(slow) as client:
            answer = await client.get(
                QUERY_RANGE, params={"query": '{a="b"}'}, headers={"x-api-key": keys["open"]}
            )
    assert answer.status_code == 504 and answer.json()["error"]["code"] == "loki_timeout"


async def test_logs_read_scope_is_required(
    keys_file: KeysFile, loki: LokiQueryMock, client_for: Callable[..., Any]
) -> None:
    summary_only = keys_file.add("summary-only", ["summary"])
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    async with client_for(app) as client:
        for path in ("/logs/gcs", QUERY_RANGE, "/api/monitoring/logs/labels"):
            assert (await client.get(path, params={"query": '{a="b"}'})).status_code == 401
            answer = await client.get(path, params={"query": '{a="b"}'}, headers={"x-api-key": summary_only})
            assert answer.status_code == 403, path
    assert loki.requests == []


async def test_instant_log_query_reports_truncation(proxy: httpx.AsyncClient, keys: dict[str, str]) -> None:
    """Loki 3.7.6 refuses log queries at /query (tests/loki/test_gateway_real_loki.py); an older or
    other Loki that answers them gets them shaped like query_range pages, in Loki's streams format."""
    values = [[str(BASE_NS + i), f"line {i}", {}] for i in (3, 2, 1)]
    with respx.mock() as router:
        route = router.get(f"{LOKI_TEST_URL}/loki/api/v1/query").mock(
            return_value=recorded_streams([{"stream": {"source": "gcs"}, "values": values}])
        )
        answer = await proxy.get(
            "/api/monitoring/logs/query",
            params={"query": '{source="gcs"}', "limit": 2},
            headers={"x-api-key": keys["open"]},
        )
    body = answer.json()
    assert route.calls.last.request.url.params["limit"] == "3"
    assert body["truncated"] is True and body["next_cursor"] is None
    assert body["streams"][0]["entries"] == [
        [format_ns(BASE_NS + 3), "line 3"],
        [format_ns(BASE_NS + 2), "line 2"],
    ]


async def test_loki_start_end_names_are_accepted_not_dropped(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    headers = {"x-api-key": keys["open"]}
    window = {"start": str(BASE_NS + 1), "end": str(BASE_NS + 2)}
    answer = await proxy.get(QUERY_RANGE, params={"query": '{source="gcs"}', **window}, headers=headers)
    assert [e[1] for s in answer.json()["streams"] for e in s["entries"]] == ["gcs 1"]
    sent = loki.requests[-1].url.params
    assert (sent["start"], sent["end"]) == (str(BASE_NS + 1), str(BASE_NS + 2))
    both = await proxy.get(
        QUERY_RANGE, params={"query": '{source="gcs"}', "since": "1h", "start": "2h"}, headers=headers
    )
    assert both.status_code == 400 and both.json()["error"]["code"] == "invalid_time"
    # authentication comes before parameter checks
    anonymous = await proxy.get(QUERY_RANGE, params={"query": "{}", "since": "bogus"})
    assert anonymous.status_code == 401


@pytest.mark.parametrize(("entries", "truncated"), [(5000, False), (5001, True), (7000, True)])
async def test_the_advertised_maximum_limit_fits_lokis_default_maximum(
    keys: dict[str, str], keys_file: KeysFile, client_for: Callable[..., Any], entries: int, truncated: bool
) -> None:
    """limit=5000 (query_max_limit) against a Loki with its default max_entries_limit_per_query
    of 5000: the gateway asked for 5,001 and always got a 400. It asks for 5,000 now and finds out
    exactly whether there is more (tests/loki/test_gateway_real_loki.py does this on the real Loki)."""
    mock = LokiQueryMock(max_entries_limit=5000)
    for i in range(entries):
        mock.add({"source": "gcs", "level": "info"}, BASE_NS + i, f"line {i}")
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, cache_ttl_seconds=0.0))
    # a byte budget that holds all 5,000 lines: the page ends at the limit
    params = {
        "query": '{source="gcs"}', "limit": 5000, "direction": "forward", "max_bytes": 4 << 20, **WINDOW,
    }
    with answering_at(LOKI_TEST_URL, mock):
        async with client_for(app) as client:
            answer = await client.get(QUERY_RANGE, params=params, headers={"x-api-key": keys["open"]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert sum(len(s["entries"]) for s in body["streams"]) == 5000
            assert body["truncated"] is truncated and (body["next_cursor"] is not None) is truncated
            assert max(int(r.url.params["limit"]) for r in mock.requests) <= 5000
            if truncated:
                following = {**params, "cursor": body["next_cursor"]}
                rest = await client.get(QUERY_RANGE, params=following, headers={"x-api-key": keys["open"]})
                assert rest.status_code == 200, rest.text
                got = [e[1] for s in rest.json()["streams"] for e in s["entries"]]
                assert got == [f"line {i}" for i in range(5000, entries)]
                assert rest.json()["truncated"] is False


async def test_a_cursor_too_long_for_a_url_is_refused_with_a_hint(
    keys: dict[str, str], keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    """Each entry returned at a page's last timestamp costs the cursor 5 bytes: past ~2,450 of
    them it would not fit the 16 KiB the gateway (and uvicorn's request line) accept."""
    mock = LokiQueryMock()
    for i in range(4000):
        mock.add({"source": "gcs", "level": "info"}, BASE_NS, f"same instant {i}")
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, cache_ttl_seconds=0.0))
    params = {"query": '{source="gcs"}', "limit": 1000, **WINDOW}
    cursor, statuses = None, []
    with answering_at(LOKI_TEST_URL, mock):
        async with client_for(app) as client:
            for _ in range(4):
                answer = await client.get(
                    QUERY_RANGE, params={**params, **({"cursor": cursor} if cursor else {})},
                    headers={"x-api-key": keys["open"]},
                )
                statuses.append(answer.status_code)
                if answer.status_code != 200:
                    break
                cursor = answer.json()["next_cursor"]
    assert statuses == [200, 200, 422]
    assert answer.json()["error"]["code"] == "too_many_at_one_timestamp"
    assert "narrow the query" in answer.json()["error"]["hint"]


async def test_label_listings_hide_lokis_internal_labels(
    proxy: httpx.AsyncClient, keys: dict[str, str], loki: LokiQueryMock
) -> None:
    """Loki adds __stream_shard__ to streams it shards automatically (under a high push rate, which
    a test cannot bring about on demand): no caller can filter by it, so the listing leaves it out."""
    loki.add({"source": "gcs", "service_name": "trades", "__stream_shard__": "1"}, BASE_NS + 9, "sharded")
    answer = await proxy.get(
        "/api/monitoring/logs/labels", params=WINDOW, headers={"x-api-key": keys["open"]}
    )
    assert answer.status_code == 200, answer.text
    assert "__stream_shard__" not in answer.json()["labels"]
    assert "service_name" in answer.json()["labels"]
