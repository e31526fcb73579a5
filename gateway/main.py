"""The FastAPI app factory. The lifespan owns the one shared httpx.AsyncClient; every client a
route needs hangs off `app.state` and is reached through gateway.api.deps."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import DefaultCookiePolicy

import httpx
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import openapi
from gateway.api.routes import alerts, health, logql, logs, loki_api, monitoring, summary, tail
from gateway.config import GatewaySettings, get_settings
from gateway.errors import install_error_handlers
from gateway.mcp import server as mcp_server
from gateway.metrics import REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE, route_template
from gateway.security import Authenticator, KeyRateLimiter, KeyStore, build_rate_limiter
from gateway.services.bounded_http import PoolGatedTransport
from gateway.services.cache import MemoryCache, build_cache
from gateway.services.loki import LokiClient
from gateway.services.loki_health import LokiHealth
from gateway.services.upstreams import load_services

HTTP_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# connections in the Loki pool beyond LOKI_MAX_CONCURRENT_REQUESTS: readiness and liveness probes
LOKI_PROBE_CONNECTIONS = 4


def loki_pool_limits(settings: GatewaySettings) -> httpx.Limits:
    """Room for every call the gate lets through plus the probes, so no Loki call ever queues
    inside httpcore's pool (see gateway.services.bounded_http)."""
    size = settings.loki_max_concurrent_requests + LOKI_PROBE_CONNECTIONS
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


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


def _client(
    transport: httpx.AsyncBaseTransport | None, limits: httpx.Limits, timeout: float
) -> httpx.AsyncClient:
    # every request waits for a connection in the gate, never inside httpcore's pool
    assert limits.max_connections is not None
    inner = transport or httpx.AsyncHTTPTransport(limits=limits)
    gated = PoolGatedTransport(inner, limits.max_connections)
    http = httpx.AsyncClient(transport=gated, timeout=timeout, follow_redirects=False)
    # shared by every caller: an upstream's Set-Cookie must never ride along on another
    # caller's proxied request, so the jar accepts no cookie at all
    http.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return http


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: GatewaySettings = app.state.settings
    transport = app.state.http_transport
    # Loki's queries get a pool of their own, sized to their concurrency bound: proxies, probes
    # and forwards on the shared pool can then never make a Loki call wait for a connection
    async with (
        _client(transport, HTTP_POOL_LIMITS, settings.loki_timeout_seconds) as http,
        _client(transport, loki_pool_limits(settings), settings.loki_timeout_seconds) as loki_http,
    ):
        app.state.http = http
        app.state.loki = LokiClient(loki_http, settings)
        app.state.loki_health = LokiHealth(app.state.loki, settings.probe_timeout_seconds)
        app.state.cache = await build_cache(settings)
        if settings.redis_url:
            app.state.authenticator = Authenticator(
                app.state.authenticator.keys, await build_rate_limiter(settings)
            )
        # what exists now lives as long as the app: keep it out of the collector's full passes,
        # which otherwise pause a request for 70-100 ms every ~140 requests
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.loki_health.close()
            await app.state.cache.close()


def create_app(
    settings: GatewaySettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the gateway. Raises gateway.security.GatewayConfigError when no API key is
    configured or a config file is invalid. `http_transport` replaces the network for tests."""
    settings = settings or get_settings()
    keys = KeyStore(settings)
    services = load_services(settings.gateway_services_file)

    # FastAPIOffline serves Swagger UI and ReDoc from the package, not a CDN: /docs works air-gapped
    app = FastAPIOffline(
        title="Loki monitoring gateway",
        description="Authenticated log queries, health overview and upstream proxies over Loki.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.services = services
    app.state.http_transport = http_transport
    app.state.authenticator = Authenticator(keys, KeyRateLimiter(settings.rate_limit))
    app.state.cache = MemoryCache(max_bytes=settings.cache_max_bytes)
    app.state.loki = None
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
    app.include_router(mcp_server.router)  # /mcp; its session manager runs in the router's lifespan
    app.include_router(tail.router)

    # keep last: catch-all proxy /api/monitoring/{service}/{path:path}
    app.include_router(monitoring.proxy_router)
    openapi.install(app)
    return app
