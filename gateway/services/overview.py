"""The health overview: the configured services and the ops stack probed, error counts per
source over the last hour against the hour before (narrowed by the key's label policy) and, when
errors rose, where most come from. Cached per tenant and policy (REST route and MCP tool alike)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from gateway.config import GatewaySettings, UpstreamService
from gateway.security import Principal
from gateway.services.cache import Cache, cached
from gateway.services.error_trend import TREND_QUERY, Trend, parse_trend, top_template
from gateway.services.errors import ServiceError
from gateway.services.logql import inject_policy, parse_policy, scan_query
from gateway.services.loki import LokiClient
from gateway.services.redact import redact
from gateway.services.times import NS_PER_HOUR, echo_window, format_ns
from gateway.services.upstreams import ProbeResult, probe, probe_all

log = logging.getLogger(__name__)

OVERVIEW_CACHE_KEY = "monitoring:overview"
ERROR_COUNTS_QUERY = TREND_QUERY  # errors per source and service, last hour and the one before
NO_SERVICES_NOTE = (
    "no services are configured: list them in the YAML file named by GATEWAY_SERVICES_FILE "
    "(name, base_url, health_path) to have their health here"
)
OPS_READY_PATHS = {"loki": "/ready", "prometheus": "/-/ready", "alertmanager": "/-/ready"}


def ops_urls(settings: GatewaySettings) -> dict[str, str]:
    bases = {
        "loki": settings.loki_url,
        "prometheus": settings.prometheus_url,
        "alertmanager": settings.alertmanager_url,
    }
    return {
        name: base.rstrip("/") + OPS_READY_PATHS[name] for name, base in bases.items() if base
    }


def scoped(principal: Principal, query: str) -> str:
    """`query` narrowed by the key's label policy when it has one."""
    if not principal.label_policy:
        return query
    return inject_policy(scan_query(query), parse_policy(principal.label_policy)).text


def error_counts_query(principal: Principal) -> str:
    """The per-source error count query, narrowed by the key's label policy when it has one."""
    return scoped(principal, ERROR_COUNTS_QUERY)


async def _error_counts(loki: LokiClient, principal: Principal) -> tuple[dict[str, Any], Trend | None]:
    try:
        answer = await loki.query(error_counts_query(principal), tenant=principal.tenant)
        trend = parse_trend(answer)
    except ServiceError as exc:
        return {"available": False, "error": exc.message, "by_source": {}}, None
    except Exception as exc:  # the overview reports Loki trouble (or junk); it never fails because of it
        log.warning("error counts from Loki failed: %s", type(exc).__name__)
        return {"available": False, "error": type(exc).__name__, "by_source": {}}, None
    return {"available": True, "error": None, "by_source": trend.by_source}, trend


async def _error_trend(loki: LokiClient, principal: Principal, trend: Trend | None) -> dict[str, Any] | None:
    """Last hour against the previous one; when errors rose, the top source, service, template."""
    if trend is None:
        return None
    answer: dict[str, Any] = {
        "last_hour": trend.last_hour, "previous_hour": trend.previous_hour, "rising": trend.rising,
    }
    top = trend.top()
    if top is None or not trend.rising:
        return answer
    source, service, count, before = top
    answer["top"] = {"source": source, "service_name": service, "last_hour": count, "previous_hour": before}
    try:
        answer["top"]["template"] = await top_template(
            loki, source=source, service=service, now_ns=time.time_ns(),
            tenant=principal.tenant, scope=lambda query: scoped(principal, query), redact=redact,
        )
    except Exception as exc:  # the template is a courtesy; the trend stands without it
        log.warning("top error template failed: %s", type(exc).__name__)
        answer["top"]["template"] = None
    return answer


def _reasons(everything: list[ProbeResult], trend: dict[str, Any] | None) -> list[str]:
    reasons = [f"{r.name} is {r.status}" for r in everything if r.status != "up"]
    if trend and trend["rising"]:
        top = trend.get("top") or {}
        template = (top.get("template") or {}).get("template")
        reasons.append(
            f"{trend['last_hour']} errors in the last hour against {trend['previous_hour']} the hour before"
            + (f"; most from {top['source']}/{top['service_name']} ({top['last_hour']})" if top else "")
            + (f", mostly \"{template[:160]}\"" if template else "")
        )
    return reasons


async def _overview(
    principal: Principal,
    http: httpx.AsyncClient,
    settings: GatewaySettings,
    loki: LokiClient,
    upstreams: Mapping[str, UpstreamService],
) -> dict[str, Any]:
    ops = ops_urls(settings)
    services, ops_results, (errors, counted) = await asyncio.gather(
        probe_all(http, list(upstreams.values())),
        asyncio.gather(
            *(probe(http, name, url, settings.probe_timeout_seconds) for name, url in ops.items())
        ),
        _error_counts(loki, principal),
    )
    checked_ns = time.time_ns()
    everything: list[ProbeResult] = [*services, *ops_results]
    trend = await _error_trend(loki, principal, counted)
    reasons = _reasons(everything, trend)
    return {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "checked_at": format_ns(checked_ns),
        "window": echo_window(checked_ns - NS_PER_HOUR, checked_ns),  # the hour the error counts cover
        "services": [r.as_dict() for r in services],
        **({} if services else {"services_note": NO_SERVICES_NOTE}),
        "ops": {r.name: r.as_dict() for r in ops_results},
        "errors_last_hour": errors,
        "error_trend": trend,
    }


async def overview(
    principal: Principal,
    http: httpx.AsyncClient,
    settings: GatewaySettings,
    cache: Cache,
    loki: LokiClient,
    upstreams: Mapping[str, UpstreamService],
) -> dict[str, Any]:
    # error counts depend on the key's tenant and label policy, so they are part of the cache key
    scope_digest = hashlib.sha256(f"{principal.tenant}|{principal.label_policy}".encode()).hexdigest()
    return await cached(  # type: ignore[no-any-return]
        cache,
        f"{OVERVIEW_CACHE_KEY}:{scope_digest[:16]}",
        settings.overview_cache_ttl_seconds,
        lambda: _overview(principal, http, settings, loki, upstreams),
    )
