"""Ready-made log endpoints per source (GCS, Firestore, pods) and the production overview. Filters
become a LogQL query built by gateway.services.log_filters (every value escaped), the key's label
policy is injected, and answers have the one shape of DESIGN.md with exact pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway.api.deps import QueryContext, QueryContextDep
from gateway.api.params import Filter, LogParamsDep, reject_unknown_params
from gateway.api.responses import FastJSONResponse
from gateway.services.log_filters import LogParams, filtered_query, production_sources
from gateway.services.query import PageAsk

router = APIRouter(tags=["logs"], dependencies=[Depends(reject_unknown_params)])


async def answer_filters(
    ctx: QueryContext,
    params: LogParams,
    labels: dict[str, str | list[str]],
    metadata: dict[str, str],
) -> FastJSONResponse:
    found = filtered_query(ctx.principal, ctx.settings, params, labels, metadata)
    if params.aggregate is not None:
        return FastJSONResponse(
            await ctx.queries.aggregate(
                ctx.key, found.scanned, found.start_ns, found.end_ns,
                grouping_text=params.aggregate, groups=params.groups, cursor_text=params.cursor,
            )
        )
    return await ctx.answer_page(
        PageAsk(
            found.scanned,
            start_ns=found.start_ns,
            end_ns=found.end_ns,
            limit=found.limit,
            direction=params.direction,
            cursor_text=params.cursor,
            max_bytes=params.max_bytes,
            compact=params.format == "compact",
        )
    )


@router.get("/logs/gcs", summary="GCS object logs")
async def gcs_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    bucket: Filter = None,
    prefix: Filter = None,
    service: Filter = None,
    object: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "gcs",
        "bucket": bucket or "",
        "prefix": prefix or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"object": object or ""})


@router.get("/logs/firestore", summary="Firestore document logs")
async def firestore_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    collection: Filter = None,
    service: Filter = None,
    doc_id: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "firestore",
        "collection": collection or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"doc_id": doc_id or ""})


@router.get("/logs/pods", summary="Kubernetes pod logs")
async def pod_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    namespace: Filter = None,
    pod: Filter = None,
    container: Filter = None,
    service: Filter = None,
    node: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "pod",
        "namespace": namespace or "",
        "pod": pod or "",
        "container": container or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"node": node or ""})


@router.get("/api/monitoring/logs/production", summary="Production logs across sources")
async def production_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    source: Annotated[list[str], Query(description="gcs, firestore, pod; default all three")] = [],  # noqa: B006
    service: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": production_sources(source),
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {})
