"""Prometheus collectors of the gateway, in their own registry. Names are a contract with
grafana-dashboards/ and the Prometheus rules in ops-stack/: rename only together with them."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

UNMATCHED_ROUTE = "unmatched"  # label for requests no route matched; never the raw path

REQUESTS = Counter(
    "gateway_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time to answer a request, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
AUTH = Counter(
    "gateway_auth",
    "Authentication attempts by outcome (ok, missing, invalid, expired, forbidden, rate_limited).",
    ["outcome"],
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Failed calls to upstreams (loki, openai, a monitored service), by kind "
    "(connect, timeout, status, redirect, too_large, invalid_response).",
    ["upstream", "kind"],
    registry=REGISTRY,
)

ALERT_FIELDS_TRUNCATED = Counter(
    "gateway_alert_fields_truncated",
    "Strings cut and label/annotation keys dropped from stored alerts to fit ALERTS_ENTRY_MAX_BYTES.",
    registry=REGISTRY,
)


def route_template(scope: MutableMapping[str, Any]) -> str | None:
    """The matched route's path template including router prefixes, or None before routing.
    FastAPI >= 0.16x keeps the prefixed template in its effective route context and puts the
    un-prefixed original route in scope["route"]; older versions only have scope["route"]."""
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(context, "path", None)
    if template:
        return str(template)
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None)
