"""The auth matrix over every route the app has at test time (routes added by other modules are
covered automatically), audit events, the auth metric, rate limits and refusal to start."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from gateway.api.deps import REQUIRED_SCOPE_ATTR
from gateway.api.routes.health import UNAUTHENTICATED_PATHS
from gateway.main import create_app
from gateway.metrics import REGISTRY
from gateway.security import ADMIN_SCOPE, KNOWN_SCOPES, GatewayConfigError, fingerprint, generate_key
from tests.conftest import clear_of_a_minute_boundary
from tests.gateway.conftest import KeysFile, make_settings

try:  # FastAPI >= 0.16x keeps included routers nested; this flattens them with their prefixes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI flattens app.routes itself
    iter_route_contexts = None

DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
KEY_OPTIONAL_PATHS = frozenset({"/metrics"})  # open unless GATEWAY_METRICS_REQUIRE_KEY
OPEN_PATHS = UNAUTHENTICATED_PATHS | DOCS_PATHS | KEY_OPTIONAL_PATHS
# authenticate every request themselves and check a scope per MCP tool: tests/gateway/mcp/test_mcp.py
SELF_AUTHENTICATED_PATHS = frozenset({"/mcp"})


def _dependency_calls(dependant: Any) -> Iterator[Any]:
    for sub in getattr(dependant, "dependencies", []):
        yield sub.call
        yield from _dependency_calls(sub)


def required_scopes(route: Any) -> set[str]:
    calls = _dependency_calls(getattr(route, "dependant", None))
    return {getattr(call, REQUIRED_SCOPE_ATTR) for call in calls if hasattr(call, REQUIRED_SCOPE_ATTR)}


def http_routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    routes = iter_route_contexts(app.routes) if iter_route_contexts else app.routes
    for route in routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                yield method, route.path, route


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


_collection_app = create_app(make_settings(ai_monitoring_api_key=generate_key()))
ALL_ROUTES = [
    (m, p, sorted(required_scopes(r)))
    for m, p, r in http_routes(_collection_app)
    if p not in SELF_AUTHENTICATED_PATHS
]
PROTECTED = [(m, p, tuple(scopes)) for m, p, scopes in ALL_ROUTES if p not in OPEN_PATHS]
OPEN = [(m, p) for m, p, _ in ALL_ROUTES if p in OPEN_PATHS]


def test_route_inventory_has_the_expected_routes() -> None:
    paths = {p for _, p, _ in ALL_ROUTES}
    assert UNAUTHENTICATED_PATHS | {"/metrics", "/api/monitoring/overview"} <= paths
    assert "/api/monitoring/{service}/{path:path}" in paths


def test_catch_all_proxy_is_registered_last() -> None:
    """Otherwise it would shadow /api/monitoring/logs/..., /summary, /alerts ..."""
    assert ALL_ROUTES[-1][1] == "/api/monitoring/{service}/{path:path}"


async def test_specific_monitoring_routes_win_over_the_proxy(
    keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    proxy_only = keys_file.add("proxy-only", ["proxy"])
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path))
    specific = [p for m, p, _ in ALL_ROUTES if m == "GET" and p.startswith("/api/monitoring/")]
    specific.remove("/api/monitoring/{service}/{path:path}")
    assert specific
    async with client_for(app) as client:
        for path in specific:
            response = await client.get(concrete(path), headers={"x-api-key": proxy_only})
            assert response.status_code == 403, path  # their own scope, not the proxy's


@pytest.mark.parametrize(("method", "path", "scopes"), ALL_ROUTES, ids=lambda v: str(v))
def test_every_route_is_open_or_needs_a_scope(method: str, path: str, scopes: list[str]) -> None:
    if path in OPEN_PATHS:
        assert scopes == [], f"{method} {path} is listed as open but requires {scopes}"
    else:
        assert scopes, f"{method} {path} must depend on require_scope(...)"
        assert set(scopes) <= KNOWN_SCOPES


@pytest.fixture
def matrix_keys(keys_file: KeysFile) -> dict[str, str]:
    past = datetime.now(UTC) - timedelta(minutes=1)
    keys = {
        "admin": keys_file.add("admin", [ADMIN_SCOPE]),
        "expired": keys_file.add("expired", [ADMIN_SCOPE], expires_at=past),
    }
    for scope in KNOWN_SCOPES - {ADMIN_SCOPE}:
        keys[scope] = keys_file.add(f"only-{scope.replace(':', '-')}", [scope])
    return keys


@pytest.fixture
def matrix_app(keys_file: KeysFile, matrix_keys: dict[str, str]) -> FastAPI:
    return create_app(make_settings(gateway_api_keys_file=keys_file.path))


def _error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.mark.parametrize(("method", "path", "scopes"), PROTECTED, ids=lambda v: str(v))
async def test_protected_route_refuses_missing_bad_expired_and_wrong_scope_keys(
    method: str, path: str, scopes: tuple[str, ...], matrix_app: FastAPI, matrix_keys: dict[str, str],
    client_for: Callable[..., Any],
) -> None:
    url = concrete(path)
    wrong_scope = sorted(KNOWN_SCOPES - {*scopes, ADMIN_SCOPE})[0]
    async with client_for(matrix_app) as client:
        async def call(headers: dict[str, str]) -> httpx.Response:
            return await client.request(method, url, headers=headers, json={} if method != "GET" else None)

        missing = await call({})
        assert (missing.status_code, _error_code(missing)) == (401, "missing_api_key")
        bad_key = generate_key()
        for headers in ({"x-api-key": bad_key}, {"authorization": f"Bearer {bad_key}"}):
            bad = await call(headers)
            assert (bad.status_code, _error_code(bad)) == (401, "invalid_api_key")
            assert bad_key not in bad.text
        expired = await call({"x-api-key": matrix_keys["expired"]})
        assert (expired.status_code, _error_code(expired)) == (401, "expired_api_key")
        forbidden = await call({"authorization": f"ApiKey {matrix_keys[wrong_scope]}"})
        assert (forbidden.status_code, _error_code(forbidden)) == (403, "insufficient_scope")
        assert matrix_keys[wrong_scope] not in forbidden.text


@pytest.mark.parametrize(("method", "path", "scopes"), PROTECTED, ids=lambda v: str(v))
async def test_protected_route_accepts_each_header_form_and_the_exact_scope(
    method: str, path: str, scopes: tuple[str, ...], matrix_app: FastAPI, matrix_keys: dict[str, str],
    client_for: Callable[..., Any],
) -> None:
    """Past authentication the route may answer anything (Loki is a 503 stub here), but never
    401/403: with an admin key in each header form, and with a key holding only its scope."""
    admin = matrix_keys["admin"]
    forms = [
        {"x-api-key": admin},
        {"authorization": f"Bearer {admin}"},
        {"authorization": f"ApiKey {admin}"},
    ]
    if len(scopes) == 1:
        forms.append({"x-api-key": matrix_keys[scopes[0]]})
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(return_value=httpx.Response(503, text="stub upstream"))
        async with client_for(matrix_app) as client:
            for headers in forms:
                response = await client.request(
                    method, concrete(path), headers=headers, json={} if method != "GET" else None
                )
                assert response.status_code not in (401, 403), (headers.keys(), response.text)


@pytest.mark.parametrize(("method", "path"), OPEN, ids=lambda v: str(v))
async def test_open_routes_need_no_key(method: str, path: str, client: httpx.AsyncClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(return_value=httpx.Response(200, text="ready"))
        response = await client.request(method, path)
    assert response.status_code == 200


async def test_metrics_require_a_key_when_configured(
    keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    metrics_key = keys_file.add("prometheus", ["metrics"])
    other_key = keys_file.add("agent", ["logs:read"])
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, gateway_metrics_require_key=True))
    async with client_for(app) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"x-api-key": other_key})).status_code == 403
        allowed = await client.get("/metrics", headers={"authorization": f"Bearer {metrics_key}"})
    assert allowed.status_code == 200
    assert "gateway_auth_total" in allowed.text


def _auth_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("gateway_auth_total", {"outcome": outcome}) or 0.0


async def test_every_attempt_is_an_audit_event_without_the_key(
    matrix_app: FastAPI, matrix_keys: dict[str, str], client_for: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    bad_key = generate_key()
    attempts = [
        ({}, "missing", "-"),
        ({"x-api-key": bad_key}, "invalid", fingerprint(bad_key)),
        ({"x-api-key": matrix_keys["expired"]}, "expired", "expired"),
        ({"x-api-key": matrix_keys["logs:read"]}, "forbidden", "only-logs-read"),
        ({"authorization": f"Bearer {matrix_keys['admin']}"}, "ok", "admin"),
    ]
    before = {outcome: _auth_count(outcome) for _, outcome, _ in attempts}
    async with client_for(matrix_app) as client:
        for headers, _, _ in attempts:
            await client.get("/api/monitoring/health/nothing", headers=headers)

    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert [(e["outcome"], e["key"]) for e in events] == [(o, k) for _, o, k in attempts]
    for event in events:
        assert event["client"] == "127.0.0.1"
        assert event["path"] == "/api/monitoring/health/{service}"
        assert event["scope"] == "monitoring:read"
    secrets = [bad_key, *matrix_keys.values()]
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert not any(secret in text for secret in secrets)
    for _, outcome, _ in attempts:
        assert _auth_count(outcome) == before[outcome] + 1


async def test_rate_limit_per_key_answers_429_with_retry_after(
    keys_file: KeysFile, client_for: Callable[..., Any]
) -> None:
    first = keys_file.add("first", ["monitoring:read"])
    second = keys_file.add("second", ["monitoring:read"])
    app = create_app(make_settings(gateway_api_keys_file=keys_file.path, rate_limit="2/minute"))
    clear_of_a_minute_boundary()
    async with client_for(app) as client:
        statuses = [
            (await client.get("/api/monitoring/health/nothing", headers={"x-api-key": first}))
            for _ in range(3)
        ]
        other = await client.get("/api/monitoring/health/nothing", headers={"x-api-key": second})
    assert [r.status_code for r in statuses] == [404, 404, 429]
    limited = statuses[-1]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 404


def test_create_app_refuses_to_start_without_keys() -> None:
    with pytest.raises(GatewayConfigError, match="no API keys configured"):
        create_app(make_settings())
