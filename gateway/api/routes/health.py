"""Unauthenticated liveness/readiness, and the Prometheus exposition (key optional by setting)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import LokiHealthDep, SettingsDep, require_scope
from gateway.errors import ApiError
from gateway.metrics import REGISTRY

router = APIRouter(tags=["health"])

METRICS_SCOPE = "metrics"
UNAUTHENTICATED_PATHS = frozenset({"/health", "/health/ready", "/api/v1/health"})


def _version() -> str:
    try:
        return version("loki-gateway")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


# HEAD too (not in the schema): some load balancers and uptime checkers probe with it
@router.get("/health")
@router.head("/health", include_in_schema=False)
async def liveness(health: LokiHealthDep) -> dict[str, str]:
    """Alive unless Loki answers a fresh connection but not the gateway's pool (see
    gateway.services.loki_health); never waits on Loki, and Loki being down is no reason."""
    if health is not None and health.pool_stuck():
        raise ApiError(
            503,
            "loki_pool_stuck",
            "Loki answers a fresh connection but not the gateway's connection pool",
            "restart the gateway (a liveness probe on /health does); report it with the logs",
        )
    return {"status": "ok"}


@router.get("/api/v1/health")
@router.head("/api/v1/health", include_in_schema=False)
async def health_v1() -> dict[str, str]:
    return {"status": "ok", "service": "gateway", "version": _version()}


@router.get("/health/ready")
@router.head("/health/ready", include_in_schema=False)
async def readiness(health: LokiHealthDep) -> dict[str, Any]:
    """Loki's /ready through the Loki pool; concurrent calls share one probe (a flood of them
    must not turn into a flood on Loki, nor into 503s while Loki is fine)."""
    if health is None:
        raise ApiError(503, "loki_unavailable", "the Loki client is not set up", "start the app's lifespan")
    result = await health.ready()
    if result.status != "up":
        raise ApiError(
            503,
            "loki_unavailable",
            f"Loki is not ready: {result.error}",
            "check that Loki runs and LOKI_URL points at it",
        )
    return {"status": "ready", "loki": result.as_dict()}


async def metrics_access(request: Request, settings: SettingsDep) -> None:
    """Open unless GATEWAY_METRICS_REQUIRE_KEY is set; then a key with the `metrics` scope."""
    if settings.gateway_metrics_require_key:
        await require_scope(METRICS_SCOPE)(request)


@router.get("/metrics", dependencies=[Depends(metrics_access)], include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
