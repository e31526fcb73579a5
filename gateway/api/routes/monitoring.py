"""Health overview of the configured services and the ops stack, one service's health, and the
guarded GET proxy to a service's monitoring prefix.

`proxy_router` holds a catch-all path; gateway.main includes it after every other router."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from gateway.api.deps import CacheDep, HttpDep, Principal, SettingsDep, require_scope
from gateway.config import GatewaySettings, UpstreamService
from gateway.errors import ApiError
from gateway.services.cache import cached
from gateway.services.upstreams import ProbeResult, probe, probe_all, probe_service, proxy_get

router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])
proxy_router = APIRouter(prefix="/api/monitoring", tags=["monitoring"])

log = logging.getLogger(__name__)

MonitoringReader = Annotated[Principal, Depends(require_scope("monitoring:read"))]
ProxyCaller = Annotated[Principal, Depends(require_scope("proxy"))]

OVERVIEW_CACHE_KEY = "monitoring:overview"
ERROR_COUNTS_QUERY = 'sum by (source) (count_over_time({source=~".+", level=~"error|critical"}[1h]))'
OPS_READY_PATHS = {"loki": "/ready", "prometheus": "/-/ready", "alertmanager": "/-/ready"}


def _services(request: Request) -> dict[str, UpstreamService]:
    return request.app.state.services  # type: ignore[no-any-return]


def _service(request: Request, name: str) -> UpstreamService:
    service = _services(request).get(name)
    if service is None:
        raise ApiError(
            404,
            "unknown_service",
            f"no service named {name!r} is configured",
            "GET /api/monitoring/overview lists the configured services",
        )
    return service


def _ops_urls(settings: GatewaySettings) -> dict[str, str]:
    bases = {
        "loki": settings.loki_url,
        "prometheus": settings.prometheus_url,
        "alertmanager": settings.alertmanager_url,
    }
    return {
        name: base.rstrip("/") + OPS_READY_PATHS[name] for name, base in bases.items() if base
    }


def _vector_by_source(answer: Any) -> dict[str, float]:
    """Loki's instant-vector answer ({"data": {"result": [...]}} or the bare result list)."""
    if isinstance(answer, dict):
        answer = answer.get("data", answer)
        answer = answer.get("result", []) if isinstance(answer, dict) else answer
    counts: dict[str, float] = {}
    for sample in answer or []:
        source = sample.get("metric", {}).get("source", "unknown")
        counts[source] = float(sample.get("value", [0, "0"])[1])
    return counts


def error_counts_query(principal: Principal) -> str:
    """The per-source error count query, narrowed by the key's label policy when it has one."""
    if not principal.label_policy:
        return ERROR_COUNTS_QUERY
    from gateway.services.logql import inject_policy, parse_policy, scan_query

    return inject_policy(scan_query(ERROR_COUNTS_QUERY), parse_policy(principal.label_policy)).text


async def _error_counts(request: Request, principal: Principal) -> dict[str, Any]:
    loki = getattr(request.app.state, "loki", None)
    if loki is None:
        return {"available": False, "error": "the Loki client is not configured", "by_source": {}}
    try:
        answer = await loki.query(error_counts_query(principal), tenant=principal.tenant)
        by_source = _vector_by_source(answer)
    except ApiError as exc:
        return {"available": False, "error": exc.message, "by_source": {}}
    except Exception as exc:  # the overview reports Loki trouble (or junk); it never fails because of it
        log.warning("error counts from Loki failed: %s", type(exc).__name__)
        return {"available": False, "error": type(exc).__name__, "by_source": {}}
    return {"available": True, "error": None, "by_source": by_source}


async def _overview(
    request: Request, principal: Principal, http: Any, settings: GatewaySettings
) -> dict[str, Any]:
    ops = _ops_urls(settings)
    services, ops_results, errors = await asyncio.gather(
        probe_all(http, list(_services(request).values())),
        asyncio.gather(
            *(probe(http, name, url, settings.probe_timeout_seconds) for name, url in ops.items())
        ),
        _error_counts(request, principal),
    )
    everything: list[ProbeResult] = [*services, *ops_results]
    return {
        "status": "ok" if all(r.status == "up" for r in everything) else "degraded",
        "checked_at": datetime.now(UTC).isoformat(),
        "services": [r.as_dict() for r in services],
        "ops": {r.name: r.as_dict() for r in ops_results},
        "errors_last_hour": errors,
    }


@router.get("/overview")
async def overview(
    principal: MonitoringReader, request: Request, http: HttpDep, settings: SettingsDep, cache: CacheDep
) -> dict[str, Any]:
    # error counts depend on the key's tenant and label policy, so they are part of the cache key
    scope_digest = hashlib.sha256(f"{principal.tenant}|{principal.label_policy}".encode()).hexdigest()
    return await cached(  # type: ignore[no-any-return]
        cache,
        f"{OVERVIEW_CACHE_KEY}:{scope_digest[:16]}",
        settings.overview_cache_ttl_seconds,
        lambda: _overview(request, principal, http, settings),
    )


@router.get("/health/{service}")
async def service_health(
    _: MonitoringReader, service: str, request: Request, http: HttpDep, settings: SettingsDep
) -> dict[str, Any]:
    """A configured service's health, or one of the ops stack's (loki, prometheus, alertmanager)
    that the overview lists; a configured service of the same name wins."""
    ops = _ops_urls(settings)
    if service not in _services(request) and service in ops:
        return (await probe(http, service, ops[service], settings.probe_timeout_seconds)).as_dict()
    return (await probe_service(http, _service(request, service))).as_dict()


@proxy_router.get("/{service}/{path:path}")
async def proxy(
    _: ProxyCaller, service: str, path: str, request: Request, http: HttpDep, settings: SettingsDep
) -> Response:
    answer = await proxy_get(
        http,
        _service(request, service),
        path,
        request.scope.get("query_string", b""),
        settings.proxy_max_response_bytes,
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers)
