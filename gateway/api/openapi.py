"""/openapi.json as the gateway really answers: response schemas for the log routes (they return
pre-encoded JSON, which FastAPI documents as `{}`), our error envelope wherever FastAPI would
name its HTTPValidationError, every error status a route can give, limits with their defaults
and maxima, and descriptions an agent can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from gateway.api import openapi_models as models
from gateway.config import GatewaySettings
from gateway.container import app_config

REF = "#/components/schemas/{model}"
SOURCE_ROUTES = ("/logs/gcs", "/logs/firestore", "/logs/pods", "/api/monitoring/logs/production")
LOGQL = "/api/monitoring/logs"
ERROR_STATUSES = {
    "400": "Bad input: the envelope's hint says how to fix it",
    "401": "No or invalid API key",
    "403": "The key lacks the scope, or its label policy forbids the selector",
    "413": "Too much: the selected streams or the body are over a limit",
    "422": "A parameter or body field has the wrong type or value; the hint lists the valid fields",
    "429": "Rate limited; wait for Retry-After seconds",
    "502": "Loki or the upstream answered with an error",
    "503": "Loki unavailable; retry after Retry-After seconds",
    "504": "Loki did not answer in time",
}
DESCRIPTIONS = {
    "/logs/gcs": "Lines shipped from GCS objects (labels bucket, prefix, service_name, level).",
    "/logs/firestore": "Lines shipped from Firestore documents (labels collection, service_name, level).",
    "/logs/pods": "Kubernetes pod log lines (labels namespace, pod, container, service_name, level).",
    "/api/monitoring/logs/production": "Production lines across gcs, firestore and pod sources.",
}
SOURCE_ROUTE_TEXT = (
    " Time: `since`/`until` (RFC 3339, Unix or relative like 2h) or `hours`; default the last hour."
    " Lists lines newest first in the one log shape with `next_cursor` for the next page; with"
    " `aggregate=template` (or `label:<name>`, `field:<JSON field>`) answers counts instead: groups"
    " largest first with codes, levels, first/last seen and one sample each, `other` for the rest,"
    " and `stats.matched`, Loki's exact count. Which error dominates, how often and since when:"
    " `?level=error&aggregate=template`."
)
RESPONSES: dict[tuple[str, str], list[type[BaseModel]]] = {
    **{(path, "get"): [models.LogPage, models.AggregateAnswer] for path in SOURCE_ROUTES},
    (f"{LOGQL}/query_range", "get"): [models.LogPage],
    (f"{LOGQL}/query", "get"): [models.LogPage],
    (f"{LOGQL}/labels", "get"): [models.LabelsAnswer],
    (f"{LOGQL}/label/{{name}}/values", "get"): [models.LabelValuesAnswer],
    (f"{LOGQL}/stats", "get"): [models.StatsAnswer],
    (f"{LOGQL}/patterns", "get"): [models.PatternsAnswer],
    ("/logs/summary", "post"): [models.SummaryAnswer],
    ("/api/monitoring/summary", "post"): [models.SummaryAnswer],
    ("/api/monitoring/overview", "get"): [models.OverviewAnswer],
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_UNAUTHENTICATED = ("/health", "/health/ready", "/api/v1/health")


def _add_models(schemas: dict[str, Any], *extra: type[BaseModel]) -> None:
    for model in {*extra, *(m for ms in RESPONSES.values() for m in ms)}:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _limits(path: str, operation: dict[str, Any], settings: GatewaySettings) -> None:
    maximum = settings.logs_max_limit if path in SOURCE_ROUTES else settings.query_max_limit
    for param in operation.get("parameters", []):
        if param.get("name") == "limit" and param.get("in") == "query":
            param["schema"] = {"type": "integer", "minimum": 1, "maximum": maximum,
                               "default": settings.query_default_limit}
            param["description"] = (
                f"lines per page, default {settings.query_default_limit}, at most {maximum}; "
                "follow next_cursor for more"
            )


def truthful_openapi(app: FastAPI, base: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None and app.openapi_schema.get("x-gateway-truthful"):
            return app.openapi_schema
        schema = base()
        settings = app_config(app).settings
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        _add_models(schemas, models.ErrorEnvelope)
        envelope = _ref(models.ErrorEnvelope)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                statuses = ERROR_STATUSES if path not in _UNAUTHENTICATED else {"422": ERROR_STATUSES["422"]}
                for status, text in statuses.items():
                    if status == "422" or status not in responses:
                        responses[status] = _json(envelope, text)
                shapes = RESPONSES.get((path, method))
                if shapes:
                    shown = _ref(shapes[0]) if len(shapes) == 1 else {"anyOf": [_ref(m) for m in shapes]}
                    responses["200"] = _json(shown, responses.get("200", {}).get("description", "OK"))
                if path in DESCRIPTIONS:
                    operation["description"] = DESCRIPTIONS[path] + SOURCE_ROUTE_TEXT
                if path in SOURCE_ROUTES or path.startswith(LOGQL):
                    _limits(path, operation, settings)
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)
        schema["x-gateway-truthful"] = True
        app.openapi_schema = schema
        return schema

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = truthful_openapi(app, app.openapi)  # type: ignore[method-assign]
