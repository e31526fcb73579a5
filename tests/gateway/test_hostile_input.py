"""Every route, every query parameter it declares, hostile values: never a 500, every refusal is the
error envelope, and the caller's key is never echoed. The routes and their parameters are read
from the app itself, so a new route or parameter is swept without touching this file."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.config import GatewaySettings
from tests.gateway.conftest import LOKI_TEST_URL, running_client
from tests.gateway.loki_query_mock import LokiQueryMock, answering_at

HOSTILE_VALUES = [
    "",
    " ",
    "-1",
    "0",
    "1e309",
    "nan",
    "-inf",
    "99999999999999999999999999999",
    "2h",
    "-2h",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2024-02-30T00:00:00Z",
    '{x"} |= "',
    "}{",
    "\x00",
    "\u202e\ufeff",
    "%00",
    "../../etc/passwd",
    "x" * 5000,
    '{source=~".*"}',
    "{}",
    "sum(rate({source=\"gcs\"}[5m]))",
    "\u00b2",  # str.isdigit() says yes, int() says no
    "9" * 400 + "y",
    'count_over_time({source="gcs"}[' + "9" * 400 + "y])",
    '{source="\\U00110000"}',  # an escape beyond Unicode
    '{source=~"\\ud800"}',  # a lone surrogate for RE2
    # a cursor whose JSON holds Infinity (json.loads takes it)
    base64.urlsafe_b64encode(b'{"v": 2, "q": "x", "b": Infinity, "f": "0"}').decode().rstrip("=") + ".",
    # nested deeper than json.loads can recurse (a RecursionError, once a 500)
    base64.urlsafe_b64encode(b"[" * 3000).decode(),
    base64.urlsafe_b64encode(b"[" * 3000).decode() + ".",
]
VALID_SELECTOR = '{source="gcs"}'
PATH_VALUES = {"service": "nope", "name": "level", "path": "x"}


def get_routes(app: FastAPI) -> Iterator[tuple[str, set[str]]]:
    """Each GET path (path parameters filled in) and its query parameters, from the OpenAPI schema."""
    for path, operations in app.openapi()["paths"].items():
        if "get" in operations:
            names = {p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "query"}
            yield re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path), names


def post_paths(app: FastAPI) -> set[str]:
    return {path for path, operations in app.openapi()["paths"].items() if "post" in operations}


@pytest.fixture
def settings(settings: GatewaySettings) -> GatewaySettings:
    return settings.model_copy(update={"cache_ttl_seconds": 0.0})


@pytest.fixture
def loki() -> Iterator[LokiQueryMock]:
    mock = LokiQueryMock()
    mock.add({"source": "gcs", "service_name": "trades", "level": "info"}, 1_700_000_000 * 10**9, "hello")
    with answering_at(LOKI_TEST_URL, mock):
        yield mock


def check(answer: httpx.Response, key: str, what: str) -> None:
    assert answer.status_code != 500, f"{what}: 500 {answer.text[:300]}"
    assert key not in answer.text, f"{what}: the key was echoed"
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert error["code"] and error["message"], f"{what}: {answer.text[:300]}"


async def test_hostile_query_parameters_on_every_route(
    app: FastAPI, loki: LokiQueryMock, api_key: str, auth_headers: dict[str, str]
) -> None:
    routes = list(get_routes(app))
    assert len(routes) > 15 and sum(len(names) for _, names in routes) > 40  # the sweep really sweeps
    statuses: dict[int, int] = {}
    async with running_client(app) as client:
        for path, names in routes:
            base = {"query": VALID_SELECTOR} if "query" in names else {}
            for name in sorted(names):
                for value in HOSTILE_VALUES:
                    answer = await client.get(path, params={**base, name: value}, headers=auth_headers)
                    check(answer, api_key, f"GET {path}?{name}={value[:40]!r}")
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            answer = await client.get(path, params={**base, "no_such_parameter": "1"}, headers=auth_headers)
            check(answer, api_key, f"GET {path}?no_such_parameter")
    assert statuses.get(400, 0) > 100 and statuses.get(200, 0) > 100  # refusals and answers both seen


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'{"alerts": "many"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"version": "4", "alerts": [{"labels": {"a": 1e999}}]}',
        b'{"window_minutes": -5}',
        b'{"selector": "{}", "max_lines": 99999999999}',
        b'{"source": "gcs", "max_lines": 1e999}',
        b'{"source": "gcs", "start": "0001-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}',
        b'{"source": "gcs", "start": "2024-01-01T00:00:00+14:00", "end": "2023-12-31T00:00:00-12:00"}',
        b'{"source": "gcs", "start": 1e999}',
        b'{"selector": "\\u0000"}',
        b'{"source": "gcs", "start": "9999-12-31T22:00:00-12:00", "end": "9999-12-31T23:00:00-12:00"}',
        b'{"version": "4", "status": "firing", "receiver": "r", "groupKey": "g", "alerts": [{"status":'
        b' "firing", "labels": {"a": "b"}, "startsAt": "9999-12-31T23:00:00-12:00", "fingerprint": "f"}]}',
    ],
)
@pytest.mark.parametrize(
    "path", ["/logs/summary", "/api/monitoring/summary", "/api/monitoring/alerts/webhook"]
)
async def test_hostile_bodies_on_every_post_route(
    app: FastAPI, loki: LokiQueryMock, api_key: str, auth_headers: dict[str, str], path: str, body: bytes
) -> None:
    assert path in post_paths(app)
    async with running_client(app) as client:
        answer = await client.post(
            path, content=body, headers={**auth_headers, "content-type": "application/json"}
        )
    check(answer, api_key, f"POST {path} {body[:40]!r}")
    assert answer.status_code in (200, 400, 413, 422)


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ({"x-api-key": ""}, None),
        ({"x-api-key": " "}, None),
        ({"x-api-key": "k" * 100_000}, "k" * 64),
        ({"x-api-key": "\u00e9\u00e8-not-ascii".encode()}, "not-ascii"),
        ({"authorization": "Bearer"}, None),
        ({"authorization": "Bearer "}, None),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "dXNlcjpwYXNz"),
        ({"authorization": "ApiKey a-guess b c"}, "a-guess"),
        ({"authorization": "bearer\tkey-guess"}, "key-guess"),
        ({"x-api-key": "first-guess", "authorization": "Bearer second-guess"}, "guess"),
    ],
)
async def test_hostile_credentials_are_401_envelopes(
    app: FastAPI, loki: LokiQueryMock, headers: dict[str, Any], secret: str | None
) -> None:
    async with running_client(app) as client:
        answer = await client.get("/logs/gcs", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] in {"missing_api_key", "invalid_api_key"}
    if secret is not None:
        assert secret not in answer.text


async def test_a_fault_of_the_query_is_a_400_not_a_fault_of_the_keys_policy(
    app: FastAPI, loki: LokiQueryMock, auth_headers: dict[str, str]
) -> None:
    async with running_client(app) as client:
        answer = await client.get(
            "/api/monitoring/logs/query", params={"query": '{source="\\U00110000"}'}, headers=auth_headers
        )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_query"
