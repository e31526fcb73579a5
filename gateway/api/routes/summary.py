"""POST /logs/summary (also /api/monitoring/summary): an evidence-first summary of a selector's
lines over a window, with the model's text when a model is configured."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from gateway.api.bodies import body_schema, parse_body, read_bounded
from gateway.api.deps import LokiDep, Principal, SettingsDep, SummarizerDep, require_scope
from gateway.services.summary_request import SummaryRequest, run_summary

MAX_SUMMARY_BODY_BYTES = 64 * 1024  # a SummaryRequest is a few hundred bytes

router = APIRouter(tags=["summary"])


SummaryPrincipal = Annotated[Principal, Depends(require_scope("summary"))]


@router.post("/logs/summary", openapi_extra=body_schema(SummaryRequest))
@router.post("/api/monitoring/summary", openapi_extra=body_schema(SummaryRequest))
async def summarize_logs(
    principal: SummaryPrincipal,
    request: Request,
    settings: SettingsDep,
    loki: LokiDep,
    summarizer: SummarizerDep,
) -> dict[str, Any]:
    """Templates with counts and samples (the evidence), compared with the previous window of
    equal length, and a summary citing them. `"model": null` means the plain digest."""
    raw = await read_bounded(request, MAX_SUMMARY_BODY_BYTES, "send only the fields of SummaryRequest")
    body = parse_body(SummaryRequest, raw)
    return await run_summary(body, principal, settings, loki, summarizer)


