"""Liveness, readiness (Loki /ready) and the /metrics exposition."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import respx
from fastapi import FastAPI

from gateway.main import create_app
from gateway.metrics import REGISTRY
from tests.conftest import free_port
from tests.gateway.conftest import LOKI_TEST_URL, make_settings


async def test_liveness_and_v1_health_need_no_key(client: httpx.AsyncClient) -> None:
    live = await client.get("/health")
    v1 = await client.get("/api/v1/health")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert v1.status_code == 200
    assert v1.json()["status"] == "ok" and v1.json()["service"] == "gateway"
    for path in ("/health", "/api/v1/health"):  # load balancers may probe with HEAD
        head = await client.head(path)
        assert head.status_code == 200 and head.content == b""


async def test_ready_when_loki_answers_ready(client: httpx.AsyncClient) -> None:
    with respx.mock as mock:
        ready = mock.get(f"{LOKI_TEST_URL}/ready").mock(return_value=httpx.Response(200, text="ready"))
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["loki"]["status"] == "up"
    assert ready.call_count == 1


async def test_not_ready_when_loki_is_starting(client: httpx.AsyncClient) -> None:
    with respx.mock as mock:
        mock.get(f"{LOKI_TEST_URL}/ready").mock(
            return_value=httpx.Response(503, text="Ingester not ready: waiting for 15s after being ready")
        )
        response = await client.get("/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "loki_unavailable"
    assert "HTTP 503" in error["message"]
    assert "LOKI_URL" in error["hint"]


async def test_not_ready_when_loki_is_unreachable(api_key: str, client_for: Callable[..., Any]) -> None:
    app = create_app(make_settings(ai_monitoring_api_key=api_key, loki_url=f"http://127.0.0.1:{free_port()}"))
    async with client_for(app) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503
    assert "ConnectError" in response.json()["error"]["message"]
    assert int(response.headers["retry-after"]) > 0  # every 503 says when to come back


def _requests(route: str, status: str, method: str = "GET") -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("gateway_requests_total", labels) or 0.0


async def test_metrics_count_by_route_template_never_raw_path(
    app: FastAPI, client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    proxy_route = "/api/monitoring/{service}/{path}"
    before_proxy = _requests(proxy_route, "404")
    before_unmatched = _requests("unmatched", "404")
    before_health = _requests("/health", "200")
    await client.get("/api/monitoring/unknown-svc/deep/raw/path-123", headers=auth_headers)
    await client.get("/no/such/route-456")
    await client.get("/health")
    exposition = (await client.get("/metrics")).text

    assert _requests(proxy_route, "404") == before_proxy + 1
    assert _requests("unmatched", "404") == before_unmatched + 1
    assert _requests("/health", "200") == before_health + 1
    assert "path-123" not in exposition and "route-456" not in exposition
    assert 'gateway_request_duration_seconds_bucket{le="0.005",route="/health"}' in exposition
    assert "gateway_auth_total" in exposition
    assert "gateway_upstream_errors_total" in exposition or "# HELP gateway_upstream_errors" in exposition


async def test_api_docs_load_without_a_cdn(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert assets, f"{page} references no script or style sheet"
        for asset in assets:
            assert not asset.startswith(("http://", "https://", "//")), f"{page} loads {asset} from outside"
            assert (await client.get(asset)).status_code == 200, asset
