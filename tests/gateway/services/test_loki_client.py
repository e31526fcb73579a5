"""LokiClient: wire format, tenant header, error translation, and exact forward paging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.errors import as_api_error
from gateway.services.loki import (
    LokiBadRequest,
    LokiBusy,
    LokiClient,
    LokiTimeout,
    LokiUnavailable,
    LokiUpstreamError,
    entry_metadata,
    strip_forbidden_headers,
)
from tests.conftest import free_port
from tests.gateway.conftest import make_settings
from tests.gateway.loki_answers import recorded_response
from tests.gateway.loki_query_mock import LokiQueryMock

SELECTOR = '{source="gcs"}'


def client_with(handler: LokiQueryMock | object, **settings: object) -> tuple[LokiClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]
    return LokiClient(http, make_settings(**settings)), http


async def test_query_range_wire_format_and_default_tenant() -> None:
    mock = LokiQueryMock()
    mock.add({"source": "gcs"}, 1_000, "hello")
    loki, http = client_with(mock, loki_tenant_id="team-a")
    async with http:
        data = await loki.query_range(SELECTOR, start_ns=1_000, end_ns=2_000, limit=10, direction="forward")
    assert data["result"] == [{"stream": {"source": "gcs"}, "values": [["1000", "hello", {}]]}]
    sent = mock.requests[0]
    assert sent.url.path == "/loki/api/v1/query_range"
    assert dict(sent.url.params) == {
        "query": SELECTOR,
        "start": "1000",
        "end": "2000",
        "limit": "10",
        "direction": "forward",
    }
    assert sent.headers["X-Scope-OrgID"] == "team-a"
    assert sent.headers["X-Loki-Response-Encoding-Flags"] == "categorize-labels"


async def test_principal_tenant_wins_and_no_tenant_means_no_header() -> None:
    mock = LokiQueryMock()
    loki, http = client_with(mock, loki_tenant_id="default")
    async with http:
        await loki.labels(tenant="key-tenant")
        loki_plain, http2 = client_with(mock)
        async with http2:
            await loki_plain.labels()
    assert mock.requests[0].headers["X-Scope-OrgID"] == "key-tenant"
    assert "X-Scope-OrgID" not in mock.requests[1].headers


def test_forbidden_headers_are_stripped() -> None:
    kept = strip_forbidden_headers({"X-Scope-OrgID": "evil", "x-prom-label-policy": "x", "Accept": "a"})
    assert kept == {"Accept": "a"}


async def test_loki_down_is_503() -> None:
    port = free_port()  # nothing listens there
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, make_settings(loki_url=f"http://127.0.0.1:{port}"))
        with pytest.raises(LokiUnavailable) as err:
            await loki.query_range(SELECTOR, start_ns=0, end_ns=1, limit=1)
        assert await loki.ready() is False
    assert as_api_error(err.value).status == 503
    assert err.value.code == "loki_unavailable" and "LOKI_URL" in err.value.hint


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_loki_slow_is_504(silent_server: int) -> None:
    settings = make_settings(loki_url=f"http://127.0.0.1:{silent_server}", loki_timeout_seconds=0.2)
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, settings)
        with pytest.raises(LokiTimeout) as err:
            await loki.query_range(SELECTOR, start_ns=0, end_ns=1, limit=1)
    assert as_api_error(err.value).status == 504 and "0.2s" in err.value.message


async def test_loki_trickling_its_answer_is_504_after_the_timeout(trickling_server: int) -> None:
    """Every read arrives well within the timeout: the bound on the whole exchange must end it."""
    settings = make_settings(loki_url=f"http://127.0.0.1:{trickling_server}", loki_timeout_seconds=0.3)
    async with httpx.AsyncClient() as http:
        loki = LokiClient(http, settings)
        started = time.monotonic()
        with pytest.raises(LokiTimeout) as err:
            await loki.query_range(SELECTOR, start_ns=0, end_ns=1, limit=1)
        elapsed = time.monotonic() - started
    assert as_api_error(err.value).status == 504 and "0.3s" in err.value.message
    assert elapsed < 2.0


@pytest.mark.parametrize(
    ("response", "error", "status", "message"),
    [
        # Loki's refusals are text/plain (recorded from the binary)
        (recorded_response("error_parse"), LokiBadRequest, 400, "syntax error: unexpected $end"),
        (recorded_response("error_max_entries"), LokiBadRequest, 400, "max entries limit"),
        (recorded_response("error_empty_matcher"), LokiBadRequest, 400, "empty-compatible value"),
        (httpx.Response(429, text="too many outstanding requests"), LokiBusy, 503, "outstanding"),
        (httpx.Response(500, text="rpc error: code = Internal"), LokiUpstreamError, 502, "500"),
        (httpx.Response(502, text="bad gateway"), LokiUpstreamError, 502, "502"),
        (httpx.Response(200, text="<html>not json"), LokiUpstreamError, 502, "invalid JSON"),
        (httpx.Response(200, json={"status": "error"}), LokiUpstreamError, 502, "data"),
    ],
)
async def test_loki_answers_are_translated(
    response: httpx.Response, error: type[Exception], status: int, message: str
) -> None:
    loki, http = client_with(lambda _request: response)
    async with http:
        with pytest.raises(error) as err:
            await loki.query_range(SELECTOR, start_ns=0, end_ns=1, limit=1)
    assert as_api_error(err.value).status == status  # type: ignore[arg-type]
    assert message in err.value.message  # type: ignore[attr-defined]


@pytest.mark.parametrize("page_size", [1, 7, 100, 1000])
async def test_iter_lines_yields_everything_once_across_shared_timestamps(page_size: int) -> None:
    mock = LokiQueryMock()
    expected = set()
    # 3 streams; 40 timestamps; up to 25 entries share one timestamp (more than some page sizes)
    for i in range(600):
        labels = {"source": "gcs", "bucket": f"b{i % 3}"}
        ts = 10_000 + (i // 15) * 10
        line = f"line {i}"
        mock.add(labels, ts, line)
        expected.add((ts, tuple(sorted(labels.items())), line))
    mock.add({"source": "gcs", "bucket": "b0"}, 9_999, "before window")
    mock.add({"source": "gcs", "bucket": "b0"}, 20_000, "at end, excluded")
    loki, http = client_with(mock)
    async with http:
        got = [
            (ts, tuple(sorted(labels.items())), line)
            async for ts, labels, line in loki.iter_lines(
                SELECTOR, start_ns=10_000, end_ns=20_000, page_size=page_size
            )
        ]
    assert len(got) == len(set(got)) == 600
    assert set(got) == expected
    assert [g[0] for g in got] == sorted(g[0] for g in got)


async def test_iter_lines_respects_max_lines() -> None:
    mock = LokiQueryMock()
    for i in range(50):
        mock.add({"source": "gcs"}, 100 + i, f"l{i}")
    loki, http = client_with(mock)
    async with http:
        got = [
            line
            async for _, _, line in loki.iter_lines(
                SELECTOR, start_ns=0, end_ns=1_000, page_size=8, max_lines=20
            )
        ]
    assert got == [f"l{i}" for i in range(20)]


@pytest.mark.parametrize(
    ("third", "expected"),
    [
        ({}, None),
        ({"structuredMetadata": {"object": "o"}}, {"object": "o"}),
        ({"structuredMetadata": {"object": "o"}, "parsed": {"user": "ann"}}, {"object": "o", "user": "ann"}),
        ({"parsed": {"level_extracted": "x"}}, {"level_extracted": "x"}),
        ({"futureCategory": {"k": "v"}}, {"k": "v"}),  # kept, not dropped, if a later Loki adds one
    ],
)
def test_entry_metadata_flattens_lokis_categories(
    third: dict[str, Any], expected: dict[str, str] | None
) -> None:
    assert entry_metadata(["1", "line", third]) == expected
    assert entry_metadata(["1", "line"]) is None


@pytest.mark.parametrize("third", [{"object": "o"}, ["m"], "m", {"structuredMetadata": {"n": 1}}])
def test_entry_metadata_refuses_what_loki_never_sends(third: object) -> None:
    with pytest.raises(TypeError):
        entry_metadata(["1", "line", third])


async def test_empty_label_lists_from_loki_are_empty_lists() -> None:
    """Loki 3.7.6 answers {"status": "success"} without `data` when no label matches."""
    loki, http = client_with(lambda _request: recorded_response("label_values_empty"))
    async with http:
        assert await loki.label_values("level", query=SELECTOR) == []
        assert await loki.labels(query=SELECTOR) == []
