"""Health overview of the configured services and the ops stack, one service's health, and the
guarded GET proxy to a service's monitoring prefix.

`proxy_router` holds a catch-all path; gateway.main includes it after every other router."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from gateway.api.deps import CacheDep, HttpDep, LokiDep, Principal, SettingsDep, UpstreamsDep, require_scope
from gateway.config import UpstreamService
from gateway.errors import ApiError
from gateway.services.overview import ops_urls
from gateway.services.overview import overview as health_overview
from gateway.services.upstreams import probe, probe_service, proxy_get

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])
proxy_router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

MonitoringReader = Annotated[Principal, Depends(require_scope("monitoring:read"))]
ProxyCaller = Annotated[Principal, Depends(require_scope("proxy"))]


def _service(upstreams: Mapping[str, UpstreamService], name: str) -> UpstreamService:
    service = upstreams.get(name)
    if service is None:
        raise ApiError(
            404,
            "unknown_service",
            f"no service named {name!r} is configured",
            "GET /api/monitoring/overview lists the configured services",
        )
    return service


@router.get("/overview")
async def overview(
    principal: MonitoringReader,
    http: HttpDep,
    settings: SettingsDep,
    cache: CacheDep,
    loki: LokiDep,
    upstreams: UpstreamsDep,
) -> dict[str, Any]:
    return await health_overview(principal, http, settings, cache, loki, upstreams)


@router.get("/health/{service}")
async def service_health(
    _: MonitoringReader, service: str, http: HttpDep, settings: SettingsDep, upstreams: UpstreamsDep
) -> dict[str, Any]:
    """A configured service's health, or one of the ops stack's (loki, prometheus, alertmanager)
    that the overview lists; a configured service of the same name wins."""
    ops = ops_urls(settings)
    if service not in upstreams and service in ops:
        return (await probe(http, service, ops[service], settings.probe_timeout_seconds)).as_dict()
    return (await probe_service(http, _service(upstreams, service))).as_dict()


@proxy_router.get("/{service}/{path:path}")
async def proxy(
    _: ProxyCaller,
    service: str,
    path: str,
    request: Request,
    http: HttpDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
) -> Response:
    answer = await proxy_get(
        http,
        _service(upstreams, service),
        path,
        request.scope.get("query_string", b""),
        settings.proxy_max_response_bytes,
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers)
