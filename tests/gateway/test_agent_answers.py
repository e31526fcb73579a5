"""Issue 19 as an agent meets it, on the real Loki with the planted incident: counting without
LogQL (aggregate answers), summaries that name the incident, templates that keep the words and
codes of a JSON message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.main import create_app
from gateway.services.redact import redact
from gateway.services.templates import TemplateMiner
from gateway.services.times import format_ns as rfc3339
from tests.gateway.conftest import KeysFile, make_settings
from tests.gateway.incident import MARGIN, RATE_LIMIT, TIMEOUTS, WEBSOCKET, Incident
from tests.real_loki import RealLoki

AGENT_BUDGET_BYTES = 4096




async def test_which_error_dominates_how_often_since_when_in_one_small_request(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    answer = await agent.get(
        "/logs/gcs",
        params={"bucket": incident.bucket, "level": "error", "since": "1h", "aggregate": "template"},
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.content) < AGENT_BUDGET_BYTES, len(answer.content)
    body = answer.json()
    top = body["groups"][0]
    assert top["count"] == MARGIN
    assert "insufficient margin (code -2019)" in top["template"]
    assert top["codes"] == ["-2019"]
    assert top["first_seen"] == rfc3339(incident.first_error_ns)
    counts = sorted(group["count"] for group in body["groups"])
    assert counts == sorted([MARGIN, RATE_LIMIT, WEBSOCKET, TIMEOUTS])  # nothing merged or dropped
    assert body["other"] == {"groups": 0, "count": 0}
    assert body["stats"]["matched"] == MARGIN + RATE_LIMIT + WEBSOCKET + TIMEOUTS
    assert body["window"]["since"].endswith("Z")


async def test_the_groups_not_shown_are_counted_as_other(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    answer = await agent.get(
        "/logs/gcs",
        params={"bucket": incident.bucket, "level": "error", "aggregate": "template", "groups": "1"},
    )
    body = answer.json()
    assert [group["count"] for group in body["groups"]] == [MARGIN]
    assert body["other"] == {"groups": 3, "count": RATE_LIMIT + WEBSOCKET + TIMEOUTS}


async def test_counts_by_label_and_by_json_field(agent: httpx.AsyncClient, incident: Incident) -> None:
    by_prefix = await agent.get(
        "/logs/gcs", params={"bucket": incident.bucket, "level": "error", "aggregate": "label:prefix"}
    )
    assert {g["key"]: g["count"] for g in by_prefix.json()["groups"]} == {
        "trades": MARGIN + RATE_LIMIT + WEBSOCKET, "reflections": TIMEOUTS,
    }
    by_symbol = await agent.get(
        "/logs/gcs",
        params={"bucket": incident.bucket, "prefix": "trades", "level": "error", "aggregate": "field:symbol"},
    )
    assert {g["key"]: g["count"] for g in by_symbol.json()["groups"]} == {
        "BTCUSDT": MARGIN, "ETHUSDT": RATE_LIMIT, "<missing>": WEBSOCKET,
    }


@pytest.mark.parametrize("value", ["count", "label:", "field:a b", "template:x"])
async def test_an_unknown_grouping_is_a_400_naming_the_choices(
    agent: httpx.AsyncClient, incident: Incident, value: str
) -> None:
    answer = await agent.get("/logs/gcs", params={"bucket": incident.bucket, "aggregate": value})
    assert answer.status_code == 400
    assert "aggregate=template" in answer.json()["error"]["hint"]


async def test_the_summary_of_one_bucket_names_the_incident_first(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    answer = await agent.post(
        "/logs/summary",
        json={"source": "gcs", "bucket": incident.bucket, "prefix": "trades", "focus": "errors"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    first = body["summary"].splitlines()[0]
    assert f"{MARGIN} x error" in first
    assert "insufficient margin (code -2019)" in first
    assert "New" in first
    assert body["query"].startswith("{")
    assert f'bucket="{incident.bucket}"' in body["query"]
    assert [row["count"] for row in body["evidence"]][:3] == [MARGIN, RATE_LIMIT, WEBSOCKET]


async def test_a_summary_filter_of_another_source_is_refused(agent: httpx.AsyncClient) -> None:
    answer = await agent.post("/logs/summary", json={"source": "pod", "bucket": "b"})
    assert answer.status_code == 400
    assert '"source": "gcs"' in answer.json()["error"]["hint"]


def test_templates_keep_the_message_words_and_split_error_codes() -> None:
    miner = TemplateMiner(redact)
    for i in range(50):
        code = "-2019" if i % 5 else "-1003"
        reason = "insufficient margin" if i % 5 else "rate limit"
        message = f"broker order rejected: {reason} (code {code})"
        line = json.dumps({"timestamp": f"2026-12-05T10:{i:02d}:00Z", "level": "error",
                           "msg": message, "order_id": f"ord_{i:06d}x"})
        miner.add_current(i, {"level": "error"}, line)
    templates = {miner.template_text(s.cluster_id): (s.count, s.codes) for s in miner.stats()}
    assert templates == {
        "broker order rejected: insufficient margin (code -2019)": (40, ("-2019",)),
        "broker order rejected: rate limit (code -1003)": (10, ("-1003",)),
    }


def test_plain_lines_differing_only_in_an_error_code_are_two_templates() -> None:
    miner = TemplateMiner(redact)
    for i in range(20):
        miner.add_current(i, {}, f"request {i} failed with status {503 if i % 2 else 429}")
    assert sorted(s.count for s in miner.stats()) == [10, 10]


async def test_patterns_carry_totals_and_count_what_no_pattern_covers(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    answer = await agent.get(
        "/api/monitoring/logs/patterns",
        params={"query": f'{{bucket="{incident.bucket}", level="error"}}', "since": "1h"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    total = MARGIN + RATE_LIMIT + WEBSOCKET + TIMEOUTS
    assert body["stats"]["matched"] == total
    assert sum(p["total"] for p in body["patterns"]) + body["other"]["count"] == total
    totals = [p["total"] for p in body["patterns"]]
    assert totals == sorted(totals, reverse=True)


@pytest.fixture
async def scoped_agent(
    real_loki: RealLoki, incident: Incident, keys_file: KeysFile, client_for: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """A key that sees only the incident's bucket, so other tests' lines do not count."""
    key = keys_file.add("agent", ["logs:read", "monitoring:read", "summary"],
                        label_policy=f'{{bucket="{incident.bucket}"}}')
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, loki_url=real_loki.url,
                                   overview_cache_ttl_seconds=0))
    async with client_for(app) as client:
        client.headers["x-api-key"] = key
        yield client


async def test_the_overview_says_degraded_and_names_source_service_and_template(
    scoped_agent: httpx.AsyncClient,
) -> None:
    body = (await scoped_agent.get("/api/monitoring/overview")).json()
    trend = body["error_trend"]
    assert (trend["last_hour"], trend["previous_hour"], trend["rising"]) == (
        MARGIN + RATE_LIMIT + WEBSOCKET + TIMEOUTS, 0, True,
    )
    assert trend["top"]["source"] == "gcs" and trend["top"]["service_name"] == "trades"
    assert trend["top"]["template"]["template"] == "broker order rejected: insufficient margin (code -2019)"
    assert body["status"] == "degraded"
    assert any("gcs/trades" in reason and "code -2019" in reason for reason in body["reasons"])
    assert body["services"] == [] and "GATEWAY_SERVICES_FILE" in body["services_note"]
    assert body["checked_at"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "hint", "quoted"),
    [
        ('{{bucket="{b}"}} |= timeout', "quote string values", "timeout"),
        ('sum(count_over_time({{bucket="{b}"}}))', "[range]", "))"),
    ],
)
async def test_loki_parse_errors_quote_the_text_and_suggest_the_fix(
    agent: httpx.AsyncClient, incident: Incident, query: str, hint: str, quoted: str
) -> None:
    answer = await agent.get(
        "/api/monitoring/logs/query_range", params={"query": query.format(b=incident.bucket), "since": "1h"}
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert hint in error["hint"]
    assert "near:" in error["message"] and quoted in error["message"].split("near:")[1]


async def test_a_422_lists_the_fields_the_body_takes(agent: httpx.AsyncClient) -> None:
    answer = await agent.post("/logs/summary", json={"source": "gcs", "window": "2h"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert "window" in error["message"]
    for field in ("bucket", "selector", "focus", "since"):
        assert field in error["hint"]


async def test_stats_of_just_shipped_lines_say_when_the_index_lags(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    answer = await agent.get(
        "/api/monitoring/logs/stats",
        params={"query": f'{{bucket="{incident.bucket}", level="error"}}', "since": "1h"},
    )
    body = answer.json()
    if body["entries"] == 0:  # what Loki 3.7.6 answers for lines still in its ingester
        assert "lag" in body["note"]
        assert f"but {MARGIN + RATE_LIMIT + WEBSOCKET + TIMEOUTS} lines match" in body["note"]
    else:
        assert "note" not in body
