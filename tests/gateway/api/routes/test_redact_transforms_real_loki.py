"""Issue 21 item 4: query-side transforms must not carry a secret past redaction (7 of 13 did:
`line_format ... replace`, `urlencode`, `regexReplaceAll`, `regexp` extraction into the line, a
label or a metric's `by (v)`). Run against the real Loki: a `logs:read` key gets a 403 for every
stage that rewrites lines or labels; what it may run comes back redacted; a `logs:transform` key
runs the same queries."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.main import create_app
from tests.gateway.conftest import KeysFile, make_settings, running_client
from tests.real_loki import RealLoki, run_id

S = "S3cr3tV4lu3x"
FULLWIDTH_PASSWORD = "".join(chr(ord(c) + 0xFEE0) for c in "password")
LINES = [
    json.dumps({"level": "error", "msg": "login failed", "password": S, "user": "bob"}),
    f"level=error msg=login password={S} user=bob",
    f"login failed password={S} for bob",
    json.dumps({"msg": "login", "pass\u200bword": S}, ensure_ascii=False),
    json.dumps({"msg": "login", FULLWIDTH_PASSWORD: S}, ensure_ascii=False),
    f'{{"msg":"login","pass\\u0077ord":"{S}"}}',
]


@dataclass
class Gateway:
    client: httpx.AsyncClient
    reader: dict[str, str]
    transformer: dict[str, str]
    selector: str


@pytest.fixture(scope="module")
def pushed(real_loki: RealLoki) -> str:
    service = run_id("transforms")
    now = time.time_ns()
    labels = {"source": "gcs", "service_name": service, "bucket": "b", "prefix": "trades", "level": "error"}
    real_loki.push([(labels, [(now - (len(LINES) - i) * 1_000_000, line) for i, line in enumerate(LINES)])])
    return f'{{service_name="{service}"}}'


@pytest.fixture
async def gateway(real_loki: RealLoki, pushed: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    keys = KeysFile(tmp_path / "keys.yaml")
    reader = keys.add("reader", ["logs:read", "summary"])
    transformer = keys.add("transformer", ["logs:read", "logs:transform"])
    app = create_app(make_settings(loki_url=real_loki.url, gateway_api_keys_file=str(keys.path)))
    async with running_client(app) as client:
        yield Gateway(client, {"x-api-key": reader}, {"x-api-key": transformer}, pushed)


def _rewriting_queries(sel: str) -> list[str]:
    return [
        f'{sel} | line_format `{{{{ replace "{S[:3]}" "#" __line__ }}}}`',
        f"{sel} | json | line_format `{{{{ .password | urlencode }}}}`",
        f'{sel} | line_format `{{{{ regexReplaceAll "password=(\\\\S+)" __line__ "v=$1" }}}}`',
        f"{sel} | regexp `password=(?P<v>\\S+)` | line_format `{{{{ .v }}}}`",
        f"{sel} | regexp `password=(?P<v>\\S+)`",
        f"{sel} | pattern `<_> password=<v> <_>`",
        f"{sel} | json | label_format v=password",
        f'{sel} | label_format v=`{{{{ __line__ | b64enc }}}}`',
        f'{sel} | json v="password"',
        f'{sel} | logfmt --strict v="password"',
        f"sum by (v) (count_over_time({sel} | regexp `password=(?P<v>\\S+)` [5m]))",
        f"label_replace(sum by (password) (count_over_time({sel} | json [5m])),"
        ' "v", "$1", "password", "(.*)")',
    ]


def _window() -> dict[str, str]:
    return {"since": "15m"}


async def test_a_read_key_may_not_run_stages_that_rewrite_lines_or_labels(gateway: Gateway) -> None:
    for query in _rewriting_queries(gateway.selector):
        response = await gateway.client.get(
            "/api/monitoring/logs/query_range",
            params={"query": query, **_window(), "step": "1m"},
            headers=gateway.reader,
        )
        assert response.status_code == 403, (query, response.text)
        error = response.json()["error"]
        assert error["code"] == "transform_not_allowed" and "logs:transform" in error["hint"]
        assert S not in response.text


async def test_the_instant_query_and_summaries_refuse_them_too(gateway: Gateway) -> None:
    metric = f"sum by (v) (count_over_time({gateway.selector} | regexp `password=(?P<v>\\S+)` [5m]))"
    response = await gateway.client.get(
        "/api/monitoring/logs/query", params={"query": metric}, headers=gateway.reader
    )
    assert response.status_code == 403, response.text
    body = {"selector": f"{gateway.selector} | line_format `{{{{ .password }}}}`"}
    response = await gateway.client.post("/logs/summary", json=body, headers=gateway.reader)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "transform_not_allowed"


async def test_a_transform_key_runs_them_against_loki(gateway: Gateway) -> None:
    """The scope is a real permission: Loki runs the rewriting query for it (and redaction can no
    longer recognise the rewritten secret; that is what the scope grants)."""
    extract = "regexp `password=(?P<v>[A-Za-z0-9]+)` | line_format `{{ .v | urlencode }}`"
    query = f"{gateway.selector} | {extract}"
    response = await gateway.client.get(
        "/api/monitoring/logs/query_range", params={"query": query, **_window()}, headers=gateway.transformer
    )
    assert response.status_code == 200, response.text
    lines = [entry[1] for stream in response.json()["streams"] for entry in stream["entries"]]
    assert S in lines


def _texts(body: object) -> str:
    return json.dumps(body, ensure_ascii=False)


async def test_what_a_read_key_may_run_comes_back_redacted(gateway: Gateway) -> None:
    sel = gateway.selector
    log_queries = {sel: 6, f"{sel} | json": 6, f"{sel} | logfmt": 6, f'{sel} |= "password"': 3,
                   f"{sel} | json | unpack": 6}
    for query, count in log_queries.items():
        response = await gateway.client.get(
            "/api/monitoring/logs/query_range", params={"query": query, **_window()}, headers=gateway.reader
        )
        assert response.status_code == 200, (query, response.text)
        entries = [entry for stream in response.json()["streams"] for entry in stream["entries"]]
        assert len(entries) == count, query
        assert S not in response.text, (query, response.text)
    metrics = [
        f'sum by (password) (count_over_time({sel} | json | __error__="" [5m]))',
        f'sum by (pass_word, ________) (count_over_time({sel} | json | __error__="" [5m]))',
        f'sum by (password, msg) (count_over_time({sel} | logfmt | __error__="" [5m]))',
    ]
    for query in metrics:
        for path, params in (
            ("/api/monitoring/logs/query_range", {"query": query, **_window(), "step": "1m"}),
            ("/api/monitoring/logs/query", {"query": query}),
        ):
            response = await gateway.client.get(path, params=params, headers=gateway.reader)
            assert response.status_code == 200, (query, response.text)
            assert response.json()["result"], (query, response.text)
            assert S not in response.text, (query, response.text)


async def test_loki_detected_patterns_are_redacted(gateway: Gateway, real_loki: RealLoki) -> None:
    """Loki's pattern ingester keeps a constant token as it is: `password=S3cr3t...` came back in
    a pattern. Wait until Loki itself answers with the secret in a pattern, then ask the gateway."""
    service = run_id("patterns")
    now = time.time_ns()
    lines = [f'level=error msg="login failed" password={S} user=bob{i} took={i}ms' for i in range(200)]
    labels = {"source": "gcs", "service_name": service, "level": "error"}
    real_loki.push([(labels, [(now - (len(lines) - i) * 1_000_000, line) for i, line in enumerate(lines)])])
    selector = f'{{service_name="{service}"}}'
    params = {"query": selector, "start": now - 15 * 60 * 10**9, "end": now + 60 * 10**9}
    deadline = time.monotonic() + 60
    while S not in real_loki.http.get("/loki/api/v1/patterns", params=params).text:
        if time.monotonic() > deadline:
            pytest.fail(f"Loki's pattern ingester gave no pattern with the secret: {real_loki.log_tail()}")
        time.sleep(1)
    response = await gateway.client.get(
        "/api/monitoring/logs/patterns", params={"query": selector, **_window()}, headers=gateway.reader
    )
    assert response.status_code == 200, response.text
    patterns = response.json()["patterns"]
    assert any("password=[REDACTED] user=<_>" in p["pattern"] for p in patterns), patterns
    assert S not in response.text
