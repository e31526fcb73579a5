"""/openapi.json tells the truth (issue 19): real answers of the real Loki, through the gateway,
validate against the schemas it publishes for their path, method and status; errors are our
envelope, not FastAPI's HTTPValidationError; limits carry their defaults and maxima."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from tests.gateway.incident import Incident


def check(spec: dict[str, Any], path: str, method: str, answer: httpx.Response) -> None:
    """`answer` validates against the schema /openapi.json gives for it."""
    responses = spec["paths"][path][method]["responses"]
    assert str(answer.status_code) in responses, f"{method} {path} {answer.status_code} is undocumented"
    content = responses[str(answer.status_code)]["content"]["application/json"]["schema"]
    assert content != {}, f"{method} {path} {answer.status_code} documents no shape"
    schema = {**content, "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(answer.json())


async def test_real_answers_validate_against_the_published_schemas(
    agent: httpx.AsyncClient, incident: Incident
) -> None:
    spec = (await agent.get("/openapi.json")).json()
    selector = f'{{bucket="{incident.bucket}"}}'
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket, "limit": 5}}),
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket, "aggregate": "template"}}),
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket, "aggregate": "label:prefix"}}),
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket, "limit": 5000}}),  # 400
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket, "limit": "many"}}),  # 422
        ("/logs/gcs", "get", {"params": {"bucket": incident.bucket}, "headers": {"x-api-key": "wrong"}}),
        ("/api/monitoring/logs/query_range", "get", {"params": {"query": selector, "limit": 3}}),
        ("/api/monitoring/logs/query_range", "get", {"params": {"query": f"{selector} |= oops"}}),  # 400
        ("/api/monitoring/logs/query", "get",
         {"params": {"query": f"sum(count_over_time({selector}[1h]))"}}),
        ("/api/monitoring/logs/labels", "get", {"params": {"query": selector}}),
        ("/api/monitoring/logs/label/{name}/values", "get", {"params": {"query": selector}}),
        ("/api/monitoring/logs/stats", "get", {"params": {"query": selector}}),
        ("/api/monitoring/logs/patterns", "get", {"params": {"query": selector}}),
        ("/api/monitoring/overview", "get", {}),
        ("/logs/summary", "post", {"json": {"source": "gcs", "bucket": incident.bucket, "focus": "errors"}}),
        ("/logs/summary", "post", {"json": {"source": "gcs", "window": "2h"}}),  # 422: no such field
    ]
    statuses = []
    for path, method, kwargs in calls:
        url = path.replace("{name}", "level")
        answer = await agent.request(method.upper(), url, **kwargs)
        statuses.append(answer.status_code)
        check(spec, path, method, answer)
    assert statuses == [200, 200, 200, 400, 422, 401, 200, 400, 200, 200, 200, 200, 200, 200, 200, 422]


async def test_the_schema_documents_the_envelope_limits_and_log_routes(agent: httpx.AsyncClient) -> None:
    spec = (await agent.get("/openapi.json")).json()
    assert "HTTPValidationError" not in str(spec)
    gcs = spec["paths"]["/logs/gcs"]["get"]
    assert "aggregate=template" in gcs["description"]
    limit = next(p for p in gcs["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["default"], limit["schema"]["maximum"]) == (100, 1000)
    query_range = spec["paths"]["/api/monitoring/logs/query_range"]["get"]
    assert next(p for p in query_range["parameters"] if p["name"] == "limit")["schema"]["maximum"] == 5000
    assert gcs["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
