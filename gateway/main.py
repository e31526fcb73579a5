"""The FastAPI app factory. Its one lifespan (gateway.wiring) builds the services routes use into
a typed container (gateway.container), handed out by gateway.api.deps."""

from __future__ import annotations

import time

import httpx
import httpx2
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import openapi
from gateway.api.routes import alerts, health, logql, logs, loki_api, monitoring, summary, tail
from gateway.config import GatewaySettings, get_settings
from gateway.container import AppConfig, attach_config
from gateway.errors import install_error_handlers
from gateway.mcp import server as mcp_server
from gateway.metrics import REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE, route_template
from gateway.security import KeyStore
from gateway.services.upstreams import load_services
from gateway.wiring import lifespan


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by route template (never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        route: str | None = None

        async def send_and_note_status(message: Message) -> None:
            nonlocal status, route
            if message["type"] == "http.response.start":
                status = message["status"]
                route = route_template(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = route or route_template(scope) or UNMATCHED_ROUTE
            REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            REQUEST_DURATION.labels(route=route).observe(time.perf_counter() - started)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    llm_http_client: httpx2.AsyncClient | None = None,
) -> FastAPI:
    """Build the gateway. Raises gateway.security.GatewayConfigError when no API key is
    configured or a config file is invalid. `http_transport` replaces the network for tests, as
    `llm_http_client` (an httpx2 client with a mock transport) does the model endpoint's."""
    settings = settings or get_settings()
    config = AppConfig(
        settings=settings,
        keys=KeyStore(settings),
        upstreams=load_services(settings.gateway_services_file),
        http_transport=http_transport,
        llm_http_client=llm_http_client,
    )

    # FastAPIOffline serves Swagger UI and ReDoc from the package, not a CDN: /docs works air-gapped
    app = FastAPIOffline(
        title="Loki monitoring gateway",
        description="Authenticated log queries, health overview and upstream proxies over Loki.",
        lifespan=lifespan,
    )
    attach_config(app, config)
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware)

    # Routers, one per resource. Add new routers ABOVE the catch-all proxy.
    app.include_router(health.router)
    app.include_router(monitoring.router)
    app.include_router(logs.router)
    app.include_router(logql.router)
    app.include_router(loki_api.router)  # Loki's own read API for Grafana and logcli
    app.include_router(summary.router)
    app.include_router(alerts.router)
    app.include_router(mcp_server.router)  # /mcp; its session manager runs in the app's lifespan
    app.include_router(tail.router)

    # keep last: catch-all proxy /api/monitoring/{service}/{path:path}
    app.include_router(monitoring.proxy_router)
    openapi.install(app)
    return app
