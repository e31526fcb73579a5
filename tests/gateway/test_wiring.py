"""The app's one lifespan (gateway.wiring): it builds every service into the Gateway container,
in which routes find them, and takes them away again on the way out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gateway.config import GatewaySettings
from gateway.container import Gateway, running
from gateway.main import create_app
from tests.gateway.conftest import GATEWAY_TEST_URL


async def test_the_lifespan_builds_the_container_and_clears_it(
    settings: GatewaySettings, client_for: Any, auth_headers: dict[str, str]
) -> None:
    app = create_app(settings.model_copy(update={"summary_digest_interval_minutes": 5}))
    assert running(app) is None
    async with client_for(app) as client:
        gateway = running(app)
        assert isinstance(gateway, Gateway)
        assert gateway.mcp is not None and gateway.digest is not None
        assert gateway.summarizer is not None and gateway.alerts.store is not None
        listed = await client.get("/api/monitoring/alerts", headers=auth_headers)
        tasks = {task.get_name() for task in asyncio.all_tasks()}
    assert listed.status_code == 200, listed.text
    assert {"mcp-session-manager", "summary-digest"} <= tasks
    assert running(app) is None
    left = {task.get_name() for task in asyncio.all_tasks()}
    assert not left & {"mcp-session-manager", "summary-digest"}


async def test_without_its_lifespan_the_app_answers_503_envelopes_not_500s(
    settings: GatewaySettings, auth_headers: dict[str, str]
) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=GATEWAY_TEST_URL) as client:
        alive = await client.get("/health")
        ready = await client.get("/health/ready")
        alerts = await client.get("/api/monitoring/alerts", headers=auth_headers)
        logs = await client.get("/api/monitoring/logs/query", params={"query": '{source="pod"}'},
                                headers=auth_headers)
    assert alive.status_code == 200  # liveness never depends on Loki
    for response in (ready, alerts, logs):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] in {"loki_unavailable", "alerts_unavailable", "not_started"}
