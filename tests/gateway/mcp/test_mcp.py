"""The MCP endpoint through the official SDK's own client over HTTP, against a real uvicorn gateway
on 127.0.0.1 and the real Loki: keys, scopes, label policy, every tool, budgets and cursors."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import orjson
import pytest
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from gateway.main import create_app
from tests.conftest import free_port
from tests.gateway.conftest import KeysFile, make_settings
from tests.real_loki import RealLoki, run_id

NS = 1_000_000_000
ALL_TOOLS = {
    "query_logs",
    "source_logs",
    "list_labels",
    "label_values",
    "query_stats",
    "log_patterns",
    "summarize_logs",
    "service_overview",
    "list_alerts",
    "log_volume",
    "detected_fields",
    "tail_logs",
}
LOG_TOOLS = {
    "query_logs",
    "source_logs",
    "list_labels",
    "label_values",
    "query_stats",
    "log_patterns",
    "log_volume",
    "detected_fields",
    "tail_logs",
}


@dataclass
class Gateway:
    url: str
    keys: dict[str, str]
    rid: str
    base_ns: int


class UvicornThread:
    """A real uvicorn server in a thread of its own (its own event loop), stopped by the test."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def gateway(real_loki: RealLoki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    rid = run_id("mcp")
    base_ns = time.time_ns() - 20 * 60 * NS
    streams: list[tuple[dict[str, str], list[tuple[int, str]]]] = [
        (
            {
                "source": "gcs",
                "service_name": "trades",
                "bucket": "b1",
                "prefix": "trades",
                "level": "error",
                "run_id": rid,
            },
            [
                (base_ns + i * NS, f"gcs error {i} order=ord{i} failed: timeout after {i} ms")
                for i in range(30)
            ],
        ),
        (
            {
                "source": "gcs",
                "service_name": "trades",
                "bucket": "b1",
                "prefix": "trades",
                "level": "info",
                "run_id": rid,
            },
            [
                (base_ns + i * NS + 1, f"gcs info {i} " + "x" * 9000 if i == 0 else f"gcs info {i}")
                for i in range(5)
            ],
        ),
        (
            {
                "source": "firestore",
                "service_name": "gpt_runner_trades",
                "collection": "gpt_runner_trades",
                "level": "error",
                "run_id": rid,
            },
            [(base_ns + i * NS + 2, f"firestore secret-source error {i}") for i in range(10)],
        ),
        (
            {
                "source": "pod",
                "service_name": "api",
                "namespace": "gpt",
                "pod": "api-1",
                "container": "api",
                "level": "warn",
                "run_id": rid,
            },
            [(base_ns + i * NS + 3, f"pod hidden-source warn {i}") for i in range(10)],
        ),
    ]
    real_loki.push(streams)
    keys_file = KeysFile(tmp_path_factory.mktemp("mcp-keys") / "keys.yaml")
    keys = {
        "admin": keys_file.add("admin", ["admin"]),
        "logs": keys_file.add("logs", ["logs:read"]),
        "gcs": keys_file.add(
            "gcs-only", ["logs:read", "summary", "monitoring:read"], label_policy='{source="gcs"}'
        ),
        "alerts": keys_file.add("alerts", ["alerts:read"]),
        "expired": keys_file.add("expired", ["admin"], expires_at=datetime.now(UTC) - timedelta(minutes=1)),
    }
    settings = make_settings(
        gateway_api_keys_file=keys_file.path, loki_url=real_loki.url, cache_ttl_seconds=0.0
    )
    port = free_port()
    with UvicornThread(create_app(settings), port):
        yield Gateway(f"http://127.0.0.1:{port}/mcp", keys, rid, base_ns)


@asynccontextmanager
async def session(gw: Gateway, key: str | None, *, bearer: bool = False) -> AsyncIterator[ClientSession]:
    headers = {} if key is None else ({"authorization": f"Bearer {key}"} if bearer else {"x-api-key": key})
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(gw.url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def window(gw: Gateway) -> dict[str, str]:
    return {"since": str(gw.base_ns - 60 * NS), "until": str(gw.base_ns + 120 * NS)}


def summary_args(gw: Gateway, **extra: str) -> dict[str, str]:
    """summarize_logs over this run's lines, in the same window as `window` (RFC 3339 bounds)."""
    return {"selector": f'{{run_id="{gw.rid}"}}', "start": _rfc3339(gw.base_ns - 60 * NS),
            "end": _rfc3339(gw.base_ns + 120 * NS), **extra}


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    assert orjson.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def error_of(result: CallToolResult) -> dict[str, str]:
    assert result.is_error
    error: dict[str, str] = result.structured_content["error"]
    assert set(error) == {"code", "message", "hint"} and error["hint"]
    return error


def lines(answer: dict[str, Any]) -> list[str]:
    return [entry[1] for stream in answer["streams"] for entry in stream["entries"]]


async def test_initialize_and_tools_per_scope(gateway: Gateway) -> None:
    async with session(gateway, gateway.keys["admin"]) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == ALL_TOOLS
    for tool in tools.values():
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.description and tool.input_schema["type"] == "object"
    assert "default 65536" in tools["query_logs"].input_schema["properties"]["max_bytes"]["description"]
    async with session(gateway, gateway.keys["logs"], bearer=True) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == LOG_TOOLS
    async with session(gateway, gateway.keys["alerts"]) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"list_alerts"}


async def test_a_bad_missing_or_expired_key_is_refused_before_mcp(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    bad_key = "gwk_not-a-key-at-all-000000000000"
    refusals = {
        "invalid_api_key": {"x-api-key": bad_key},
        "missing_api_key": {},
        "expired_api_key": {"authorization": f"Bearer {gateway.keys['expired']}"},
    }
    for code, headers in refusals.items():
        answer = httpx.post(
            gateway.url,
            headers={**headers, "accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert answer.status_code == 401 and answer.json()["error"]["code"] == code
        assert answer.json()["error"]["hint"] and bad_key not in answer.text
    with pytest.raises(Exception):  # the SDK's client raises on the 401
        async with session(gateway, bad_key):
            pass
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert {(e["outcome"], e["path"], e["scope"]) for e in events} >= {
        ("invalid", "/mcp", "mcp"),
        ("missing", "/mcp", "mcp"),
        ("expired", "/mcp", "mcp"),
    }
    assert bad_key not in caplog.text


async def test_a_tool_outside_the_keys_scopes_is_a_tool_error(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    async with session(gateway, gateway.keys["alerts"]) as client:
        error = error_of(await client.call_tool("query_logs", {"query": f'{{run_id="{gateway.rid}"}}'}))
        allowed = structured(await client.call_tool("list_alerts", {}))
    assert error["code"] == "insufficient_scope" and allowed["status"] == "all"
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert ("forbidden", "/mcp/tools/query_logs", "logs:read", "alerts") in {
        (e["outcome"], e["path"], e["scope"], e["key"]) for e in events
    }
    assert ("ok", "/mcp/tools/list_alerts", "alerts:read", "alerts") in {
        (e["outcome"], e["path"], e["scope"], e["key"]) for e in events
    }


async def test_query_and_source_logs_find_errors_and_page_through_them(gateway: Gateway) -> None:
    query = f'{{run_id="{gateway.rid}", level="error"}} |= "gcs"'
    async with session(gateway, gateway.keys["logs"]) as client:
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            args = {"query": query, "limit": 12, **window(gateway), **({"cursor": cursor} if cursor else {})}
            page = structured(await client.call_tool("query_logs", args))
            seen += lines(page)
            assert page["stats"]["answer_bytes"] <= page["stats"]["budget_bytes"] == 65536
            cursor = page["next_cursor"]
            assert page["truncated"] is (cursor is not None)
            if cursor is None:
                break
        assert sorted(seen) == sorted(
            f"gcs error {i} order=ord{i} failed: timeout after {i} ms" for i in range(30)
        )
        assert len(set(seen)) == 30

        pods = structured(
            await client.call_tool(
                "source_logs",
                {"source": "pods", "namespace": "gpt", "level": ["warn"], "q": "hidden", **window(gateway)},
            )
        )
        assert {s["labels"]["pod"] for s in pods["streams"]} == {"api-1"} and len(lines(pods)) == 10
        wrong = error_of(await client.call_tool("source_logs", {"source": "firestore", "bucket": "b1"}))
        assert wrong["code"] == "invalid_filter"
        bad = error_of(await client.call_tool("query_logs", {"query": "{}", **window(gateway)}))
        assert bad["code"] == "query_too_broad"
        unknown = error_of(await client.call_tool("query_logs", {"query": query, "sice": "1h"}))
        assert unknown["code"] == "invalid_arguments" and "sice" in unknown["message"]


async def test_an_oversized_answer_is_cut_at_the_budget_with_a_working_cursor(gateway: Gateway) -> None:
    query = f'{{run_id="{gateway.rid}", source="gcs"}}'
    async with session(gateway, gateway.keys["logs"]) as client:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            args = {
                "query": query,
                "limit": 1000,
                "max_bytes": 2048,
                "direction": "forward",
                **window(gateway),
                **({"cursor": cursor} if cursor else {}),
            }
            page = structured(await client.call_tool("query_logs", args))
            pages += 1
            assert len(orjson.dumps(page)) <= 2048
            assert page["stats"]["answer_bytes"] <= 2048
            seen += lines(page)
            cursor = page["next_cursor"]
            if cursor is None:
                assert page["truncated"] is False
                break
            assert page["truncated"] is True
        assert pages >= 3  # limit=1000 would have been one page
        assert len(seen) == 35 and len(set(seen)) == 35
        long_line = next(line for line in seen if line.startswith("gcs info 0 "))
        assert long_line.endswith("bytes]") and "clipped" in long_line
        assert len(long_line.encode()) < 2048 // 4 + 40


async def test_a_gcs_scoped_key_sees_no_other_source_through_any_tool(gateway: Gateway) -> None:
    rid = gateway.rid
    async with session(gateway, gateway.keys["gcs"]) as client:
        everything = structured(
            await client.call_tool(
                "query_logs", {"query": f'{{run_id="{rid}"}}', "limit": 1000, **window(gateway)}
            )
        )
        assert {s["labels"]["source"] for s in everything["streams"]} == {"gcs"}
        other = structured(
            await client.call_tool(
                "query_logs", {"query": f'{{run_id="{rid}", source="pod"}}', **window(gateway)}
            )
        )
        assert other["streams"] == []
        pods = structured(await client.call_tool("source_logs", {"source": "pods", **window(gateway)}))
        assert pods["streams"] == []
        values = structured(await client.call_tool("label_values", {"name": "source", **window(gateway)}))
        assert values["values"] == ["gcs"]
        names = structured(
            await client.call_tool("list_labels", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
        assert "collection" not in names["labels"] and "pod" not in names["labels"]
        stats = structured(
            await client.call_tool("query_stats", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
        assert 'source="gcs"' in stats["query"] and stats["over_limit"] is False
        patterns = structured(
            await client.call_tool("log_patterns", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
        assert "hidden-source" not in orjson.dumps(patterns).decode()
        assert "secret-source" not in orjson.dumps(patterns).decode()
        summary = structured(await client.call_tool("summarize_logs", summary_args(gateway)))
        text = orjson.dumps(summary).decode()
        assert "gcs error" in text and "hidden-source" not in text and "secret-source" not in text
        overview = structured(await client.call_tool("service_overview", {}))
        assert set(overview["errors_last_hour"]["by_source"]) <= {"gcs"}


async def test_every_tool_answers_for_a_full_access_key(gateway: Gateway) -> None:
    rid = gateway.rid
    async with session(gateway, gateway.keys["admin"]) as client:
        patterns = structured(
            await client.call_tool("log_patterns", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
        assert patterns["query"] == f'{{run_id="{rid}"}}'
        # the REST route's answer: redacted patterns with totals, RFC 3339 samples, the window
        assert {"patterns", "other", "stats", "window"} <= set(patterns)
        for name, args in (
            ("list_labels", {"query": f'{{run_id="{rid}"}}'}),
            ("query_stats", {"query": f'{{run_id="{rid}"}}'}),
        ):
            answer = structured(await client.call_tool(name, {**args, **window(gateway)}))
            assert answer["window"]["since"].endswith("Z"), name
        labels = structured(
            await client.call_tool("list_labels", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
        assert "source" in labels["labels"] and not any(name.startswith("__") for name in labels["labels"])
        alerts = structured(await client.call_tool("list_alerts", {"status": "firing", "limit": 5}))
        assert alerts["status"] == "firing" and alerts["count"] == len(alerts["alerts"])
        values = structured(
            await client.call_tool(
                "label_values", {"name": "source", "query": f'{{run_id="{rid}"}}', **window(gateway)}
            )
        )
        assert values["values"] == ["firestore", "gcs", "pod"] and values["window"]["until"].endswith("Z")
        summary = structured(await client.call_tool("summarize_logs", summary_args(gateway, focus="errors")))
        assert "firestore secret-source error" in orjson.dumps(summary).decode()


def _rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // NS))


def test_the_allowed_hosts_setting_guards_against_dns_rebinding(real_loki: RealLoki, tmp_path: Path) -> None:
    keys_file = KeysFile(tmp_path / "keys.yaml")
    key = keys_file.add("admin", ["admin"])
    settings = make_settings(
        gateway_api_keys_file=keys_file.path,
        loki_url=real_loki.url,
        mcp_allowed_hosts=["gateway.internal:8001"],
    )
    port = free_port()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {
        "x-api-key": key,
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-06-18",
    }
    with UvicornThread(create_app(settings), port):
        refused = httpx.post(f"http://127.0.0.1:{port}/mcp", headers=headers, json=body)
        allowed = httpx.post(
            f"http://127.0.0.1:{port}/mcp", json=body, headers={**headers, "host": "gateway.internal:8001"}
        )
    assert refused.status_code == 421 or refused.status_code == 400
    assert allowed.status_code == 200, allowed.text
    assert {tool["name"] for tool in allowed.json()["result"]["tools"]} == ALL_TOOLS


async def test_an_empty_page_says_why(gateway: Gateway) -> None:
    rid = gateway.rid
    async with session(gateway, gateway.keys["admin"]) as admin:
        typo = structured(
            await admin.call_tool(
                "query_logs", {"query": f'{{run_id="{rid}", service_name="tradse"}}', **window(gateway)}
            )
        )
        filtered = structured(
            await admin.call_tool(
                "query_logs", {"query": f'{{run_id="{rid}"}} |= "no-such-text"', **window(gateway)}
            )
        )
        found = structured(
            await admin.call_tool("query_logs", {"query": f'{{run_id="{rid}"}}', **window(gateway)})
        )
    async with session(gateway, gateway.keys["gcs"]) as scoped:
        hidden = structured(
            await scoped.call_tool(
                "query_logs", {"query": f'{{run_id="{rid}", source="pod"}}', **window(gateway)}
            )
        )
        # what a gcs-only key learns of streams outside its policy: nothing. The pod stream's
        # service exists, the other does not; both answers must be alike
        probes = []
        for matcher in ('service_name="api"', 'service_name="apx"', 'namespace=~"g.*"', 'namespace=~"x.*"'):
            args = {"query": f'{{run_id="{rid}", {matcher}}}', **window(gateway)}
            probes.append(structured(await scoped.call_tool("query_logs", args))["empty"])
    assert typo["streams"] == [] and typo["empty"]["reason"] == "no_stream_matched"
    assert "trades" in typo["empty"]["closest_values"]["service_name"]
    assert "run_id" not in typo["empty"]["closest_values"]  # its value exists
    assert filtered["streams"] == [] and filtered["empty"]["reason"] == "filtered_out"
    assert hidden["streams"] == [] and hidden["empty"]["reason"] == "hidden_by_policy"
    assert "empty" not in found
    assert probes[0] == probes[1] and probes[2] == probes[3]
    assert {probe["reason"] for probe in probes} == {"no_stream_matched"}
    # closest values come from the key's own streams only
    assert all("api" not in values for probe in probes for values in probe.get("closest_values", {}).values())


async def test_volume_and_detected_fields_within_the_policy(gateway: Gateway) -> None:
    rid = gateway.rid
    args = {"query": f'{{run_id="{rid}"}}', **window(gateway)}
    async with session(gateway, gateway.keys["admin"]) as admin:
        by_source = structured(await admin.call_tool("log_volume", {**args, "by": ["source"]}))
        over_time = structured(await admin.call_tool("log_volume", {**args, "by": ["source"], "step": "1m"}))
        fields = structured(
            await admin.call_tool("detected_fields", {**args, "query": f'{{run_id="{rid}", source="gcs"}}'})
        )
        bad = error_of(await admin.call_tool("log_volume", {**args, "query": f'{{run_id="{rid}"}} |= "x"'}))
    async with session(gateway, gateway.keys["gcs"]) as scoped:
        scoped_volume = structured(await scoped.call_tool("log_volume", {**args, "by": ["source"]}))
        scoped_fields = structured(
            await scoped.call_tool("detected_fields", {**args, "query": f'{{run_id="{rid}", source="pod"}}'})
        )
    assert by_source["volumes"][0]["labels"]["source"] == "gcs"  # the 9 KB line: largest first
    assert {row["labels"]["source"] for row in by_source["volumes"]} == {"gcs", "firestore", "pod"}
    assert by_source["unit"] == "bytes" and all(row["bytes"] > 0 for row in by_source["volumes"])
    totals = {row["labels"]["source"]: row["bytes"] for row in by_source["volumes"]}
    ranged = {row["labels"]["source"]: row["bytes"] for row in over_time["volumes"]}
    assert set(ranged) == set(totals)  # Loki's buckets count the window's edges a little differently
    assert all(0.9 * totals[source] <= ranged[source] <= totals[source] for source in totals)
    assert all(row["values"] for row in over_time["volumes"])
    assert {row["labels"]["source"] for row in scoped_volume["volumes"]} == {"gcs"}
    assert scoped_volume["volumes"][0]["bytes"] == totals["gcs"]
    assert "order" in {field["label"] for field in fields["fields"]}
    assert scoped_fields["fields"] == []
    assert bad["code"] and bad["hint"]


def test_volume_and_detected_fields_on_rest(gateway: Gateway) -> None:
    base = gateway.url.removesuffix("/mcp") + "/api/monitoring/logs"
    params = {"query": f'{{run_id="{gateway.rid}"}}', **window(gateway)}
    scoped = httpx.get(
        f"{base}/volume", params={**params, "by": "source,level"}, headers={"x-api-key": gateway.keys["gcs"]}
    )
    fields = httpx.get(f"{base}/detected_fields", params=params, headers={"x-api-key": gateway.keys["logs"]})
    bad_label = httpx.get(
        f"{base}/volume", params={**params, "by": "not a label"}, headers={"x-api-key": gateway.keys["logs"]}
    )
    assert scoped.status_code == 200, scoped.text
    assert {(row["labels"]["source"], row["labels"]["level"]) for row in scoped.json()["volumes"]} == {
        ("gcs", "error"),
        ("gcs", "info"),
    }
    assert fields.status_code == 200 and "order" in {f["label"] for f in fields.json()["fields"]}
    assert bad_label.status_code == 400 and bad_label.json()["error"]["hint"]


async def test_the_compact_format_pages_within_the_budget(gateway: Gateway) -> None:
    query = f'{{run_id="{gateway.rid}", source="gcs", level="error"}}'
    async with session(gateway, gateway.keys["logs"]) as client:
        rows: list[str] = []
        cursor, pages, headers = None, 0, set()
        while True:
            args = {
                "query": query,
                "limit": 1000,
                "max_bytes": 1024,
                "format": "compact",
                "direction": "forward",
                **window(gateway),
                **({"cursor": cursor} if cursor else {}),
            }
            page = structured(await client.call_tool("query_logs", args))
            pages += 1
            assert len(orjson.dumps(page)) <= 1024 and "streams" not in page and page["format"] == "compact"
            header, *entries = page["text"].split("\n")
            headers.add(header)
            rows += entries
            cursor = page["next_cursor"]
            if cursor is None:
                break
    (header,) = headers  # one stream: its labels once, however many pages
    assert header.startswith("{") and f'run_id="{gateway.rid}"' in header and 'level="error"' in header
    assert [row.split(" ", 1)[1] for row in rows] == [
        f"gcs error {i} order=ord{i} failed: timeout after {i} ms" for i in range(30)
    ]
    assert rows[0].split(" ", 1)[0].endswith("Z") and pages >= 3


async def test_tail_logs_follows_within_the_policy_and_resumes(gateway: Gateway) -> None:
    query = f'{{run_id="{gateway.rid}"}}'
    async with session(gateway, gateway.keys["gcs"]) as client:
        first = structured(
            await client.call_tool(
                "tail_logs",
                {"query": query, "since": window(gateway)["since"], "max_seconds": 1, "max_lines": 1000},
            )
        )
        again = structured(
            await client.call_tool(
                "tail_logs", {"query": query, "cursor": first["next_cursor"], "max_seconds": 1}
            )
        )
        small = structured(
            await client.call_tool(
                "tail_logs",
                {"query": query, "since": window(gateway)["since"], "max_seconds": 1, "max_bytes": 2048},
            )
        )
    assert {s["labels"]["source"] for s in first["streams"]} == {"gcs"}
    assert len(lines(first)) == 35 and first["reason"] == "max_seconds" and first["stats"]["entries"] == 35
    assert first["stats"]["lines_clipped"] == 1
    assert lines(again) == [] and again["next_cursor"]
    assert small["reason"] == "max_bytes" and len(orjson.dumps(small)) <= 2048
    assert lines(small) == lines(first)[: len(lines(small))]


def test_allowed_hosts_are_comma_separated_like_the_other_lists() -> None:
    assert make_settings(mcp_allowed_hosts="gateway.example.com, gateway:*").mcp_allowed_hosts == [
        "gateway.example.com",
        "gateway:*",
    ]
