"""Annotated dependencies for routes. Everything comes from `app.state`, set up by the lifespan in
gateway.main, so tests can build an app with their own settings and clients.

Use as:
    principal: Annotated[Principal, Depends(require_scope("logs:read"))]
or the shorthand  `principal: ApiKeyDep("logs:read")`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.metrics import route_template
from gateway.security import KNOWN_SCOPES, Authenticator, Principal
from gateway.services.cache import Cache
from gateway.services.loki import LokiClient

__all__ = [
    "ApiKeyDep",
    "CacheDep",
    "HttpDep",
    "LokiDep",
    "Principal",
    "SettingsDep",
    "client_address",
    "require_scope",
]

REQUIRED_SCOPE_ATTR = "required_scope"  # set on the dependency callable; tests read it

# The getters are `async def` although they never await: FastAPI runs a plain `def` dependency
# in its thread pool, a thread hop per dependency per request.


async def get_settings_from_app(request: Request) -> GatewaySettings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http  # type: ignore[no-any-return]


async def get_loki(request: Request) -> LokiClient:
    loki = getattr(request.app.state, "loki", None)
    if loki is None:  # the lifespan did not run (an app used without `async with` / startup)
        raise ApiError(503, "loki_unavailable", "the Loki client is not set up", "start the app's lifespan")
    return loki  # type: ignore[no-any-return]


async def get_cache(request: Request) -> Cache:
    return request.app.state.cache  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


@cache
def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks `scope` (401/403/429 envelopes).
    Cached per scope so FastAPI sees one dependency per scope and runs it once per request."""
    if scope not in KNOWN_SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {sorted(KNOWN_SCOPES)}")

    async def authenticated(request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        return await authenticator.authenticate(
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
HttpDep = Annotated[httpx.AsyncClient, Depends(get_http)]
LokiDep = Annotated[LokiClient, Depends(get_loki)]
CacheDep = Annotated[Cache, Depends(get_cache)]
