"""Annotated dependencies for routes: the services of gateway.container.Gateway, built by the
app's lifespan (gateway.wiring), and the settings create_app read. Tests build an app with their
own settings and transports (gateway.main.create_app) and run its lifespan.

Use as:
    principal: Annotated[Principal, Depends(require_scope("logs:read"))]
or the shorthand  `principal: ApiKeyDep("logs:read")`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from starlette.applications import Starlette

from gateway.api.responses import FastJSONResponse
from gateway.config import GatewaySettings, UpstreamService
from gateway.container import Gateway, app_config, running
from gateway.errors import ApiError
from gateway.metrics import route_template
from gateway.security import KNOWN_SCOPES, Principal
from gateway.services.alerts import AlertProcessor
from gateway.services.cache import Cache
from gateway.services.loki import LokiClient
from gateway.services.loki_health import LokiHealth
from gateway.services.query import LogQueries, PageAsk
from gateway.services.summarize import Summarizer
from gateway.services.tail import TailSlots

__all__ = [
    "AlertsDep",
    "ApiKeyDep",
    "CacheDep",
    "HttpDep",
    "LokiDep",
    "LokiHealthDep",
    "Principal",
    "QueryContext",
    "QueryContextDep",
    "SettingsDep",
    "SummarizerDep",
    "TailSlotsDep",
    "UpstreamsDep",
    "client_address",
    "require_scope",
    "started",
]

REQUIRED_SCOPE_ATTR = "required_scope"  # set on the dependency callable; tests read it

# The getters are `async def` although they never await: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hop per dependency per request. Each reads the container itself
# (no sub-dependency): one function call, not another dependency to resolve per request.


def started(app: Starlette, code: str = "not_started", what: str = "the gateway's services") -> Gateway:
    """The running services; a 503 before the app's lifespan started or after it ended."""
    gateway = running(app)
    if gateway is None:
        raise ApiError(503, code, f"{what} are not running", "start the app's lifespan; retry shortly")
    return gateway


async def get_settings_from_app(request: Request) -> GatewaySettings:
    return app_config(request.app).settings


async def get_upstreams(request: Request) -> Mapping[str, UpstreamService]:
    return app_config(request.app).upstreams


async def get_http(request: Request) -> httpx.AsyncClient:
    return started(request.app).http


async def get_loki(request: Request) -> LokiClient:
    gateway = running(request.app)
    if gateway is None:  # the lifespan did not run (an app used without `async with` / startup)
        raise ApiError(503, "loki_unavailable", "the Loki client is not set up", "start the app's lifespan")
    return gateway.loki


async def get_loki_health(request: Request) -> LokiHealth | None:
    gateway = running(request.app)
    return None if gateway is None else gateway.loki_health


async def get_cache(request: Request) -> Cache:
    return started(request.app).cache


async def get_summarizer(request: Request) -> Summarizer:
    return started(request.app).summarizer


async def get_alerts(request: Request) -> AlertProcessor:
    gateway = running(request.app)
    if gateway is None:
        raise ApiError(503, "alerts_unavailable", "the alert store is not running", "retry shortly")
    return gateway.alerts


async def get_tail_slots(request: Request) -> TailSlots:
    return started(request.app).tail_slots


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


@cache
def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks `scope` (401/403/429 envelopes).
    Cached per scope so FastAPI sees one dependency per scope and runs it once per request."""
    if scope not in KNOWN_SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {sorted(KNOWN_SCOPES)}")

    async def authenticated(request: Request) -> Principal:
        return await started(request.app).authenticator.authenticate(
            request.headers,
            scope,
            client=client_address(request),
            method=request.method,
            path=route_template(request.scope) or request.url.path,
        )

    setattr(authenticated, REQUIRED_SCOPE_ATTR, scope)
    authenticated.__name__ = f"require_scope_{scope.replace(':', '_')}"
    return authenticated


def ApiKeyDep(scope: str) -> Any:
    """`principal: ApiKeyDep("logs:read")` == Annotated[Principal, Depends(require_scope(...))]."""
    return Annotated[Principal, Depends(require_scope(scope))]


SettingsDep = Annotated[GatewaySettings, Depends(get_settings_from_app)]
UpstreamsDep = Annotated[Mapping[str, UpstreamService], Depends(get_upstreams)]
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
LokiDep = Annotated[LokiClient, Depends(get_loki)]
LokiHealthDep = Annotated[LokiHealth | None, Depends(get_loki_health)]  # None before the lifespan
CacheDep = Annotated[Cache, Depends(get_cache)]
SummarizerDep = Annotated[Summarizer, Depends(get_summarizer)]
AlertsDep = Annotated[AlertProcessor, Depends(get_alerts)]
TailSlotsDep = Annotated[TailSlots, Depends(get_tail_slots)]


def cache_key(request: Request, principal: Principal) -> str:
    material = json.dumps(
        [
            request.url.path,
            sorted(request.query_params.multi_items()),
            principal.tenant,
            principal.label_policy,
        ]
    )
    return "logs:" + hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class QueryContext:
    """What every cached query endpoint works with: the request (its cache key) and the caller's
    log queries."""

    request: Request
    principal: Principal
    settings: GatewaySettings
    loki: LokiClient
    cache: Cache

    @property
    def queries(self) -> LogQueries:
        return LogQueries(self.loki, self.settings, self.principal, self.cache)

    @property
    def key(self) -> str:
        return cache_key(self.request, self.principal)

    async def answer(self, compute: Callable[[], Awaitable[dict[str, Any]]]) -> FastJSONResponse:
        """The cached answer to this request, computed on a miss."""
        return FastJSONResponse(await self.queries.cached(self.key, compute))

    async def answer_page(self, ask: PageAsk) -> FastJSONResponse:
        """The cached page of this request, within its byte budget."""
        return FastJSONResponse(await self.queries.page(self.key, ask))


async def query_context(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("logs:read"))],
    settings: SettingsDep,
    loki: LokiDep,
    cache: CacheDep,
) -> QueryContext:
    return QueryContext(request, principal, settings, loki, cache)


QueryContextDep = Annotated[QueryContext, Depends(query_context)]
