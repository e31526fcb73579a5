"""LogQL proxy with guardrails: the client's query is scanned, the key's label policy injected into
every stream selector, selectors matching everything and over-long ranges are refused, and only
our own headers (tenant from the key) reach Loki — never the client's X-Scope-OrgID or
X-Prom-Label-Policy."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway.api.deps import LokiDep, QueryContextDep, SettingsDep
from gateway.api.params import (
    CursorText,
    FormatParam,
    Hours,
    LogReader,
    MaxBytes,
    OptionalQueryText,
    QueryText,
    Step,
    TimeText,
    reject_unknown_params,
)
from gateway.api.responses import FastJSONResponse
from gateway.errors import ApiError
from gateway.services.index_answers import (
    MAX_DETECTED_FIELDS,
    check_instant_bytes,
    detected_fields_answer,
    instant_answer,
    label_values_answer,
    labels_answer,
    patterns_answer,
    stats_answer,
    volume_answer,
)
from gateway.services.log_filters import Direction
from gateway.services.loki_compat import Window
from gateway.services.query import PageAsk
from gateway.services.query_checks import check_limit, prepare_for, query_window
from gateway.services.times import parse_time_ns

router = APIRouter(
    prefix="/api/monitoring/logs", tags=["logql"], dependencies=[Depends(reject_unknown_params)]
)


def _one_of(ours: str, our_value: str | None, lokis: str, loki_value: str | None) -> str | None:
    if our_value is not None and loki_value is not None:
        raise ApiError(
            400, "invalid_time", f"give {ours} or {lokis}, not both", f"{lokis} is Loki's name for {ours}"
        )
    return our_value if our_value is not None else loki_value


async def time_window(
    settings: SettingsDep,
    since: TimeText = None,
    until: TimeText = None,
    hours: Hours = None,
    start: Annotated[str | None, Query(max_length=64, description="Loki's name for since")] = None,
    end: Annotated[str | None, Query(max_length=64, description="Loki's name for until")] = None,
) -> Window:
    """The query window from since/until/hours, also accepting Loki's own start/end names."""
    start_ns, end_ns = query_window(
        settings, _one_of("since", since, "start", start), _one_of("until", until, "end", end), hours
    )
    return Window(start_ns, end_ns)


WindowDep = Annotated[Window, Depends(time_window)]


@router.get("/query_range", summary="LogQL range query (logs or metrics), paginated for logs")
async def query_range(
    ctx: QueryContextDep,
    query: QueryText,
    window: WindowDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    direction: Direction = "backward",
    step: Step = None,
    cursor: CursorText = None,
    max_bytes: MaxBytes = None,
    format: FormatParam = "json",
) -> FastJSONResponse:
    chosen_limit = check_limit(limit, ctx.settings.query_default_limit, ctx.settings.query_max_limit)
    return await ctx.answer_page(
        PageAsk(
            prepare_for(ctx.principal, query, ctx.settings),
            start_ns=window.start_ns,
            end_ns=window.end_ns,
            limit=chosen_limit,
            direction=direction,
            cursor_text=cursor,
            step=step,
            max_bytes=max_bytes,
            compact=format == "compact",
        )
    )


@router.get("/query", summary="LogQL instant query")
async def instant_query(
    ctx: QueryContextDep,
    query: QueryText,
    time_: Annotated[str | None, Query(alias="time", max_length=64)] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    direction: Direction = "backward",
) -> FastJSONResponse:
    settings, principal = ctx.settings, ctx.principal
    chosen_limit = check_limit(limit, settings.query_default_limit, settings.query_max_limit)
    at_ns = parse_time_ns(time_, time.time_ns()) if time_ else time.time_ns()
    scanned = prepare_for(principal, query, settings)
    await check_instant_bytes(ctx.loki, settings, principal, scanned, at_ns)

    async def compute() -> dict[str, Any]:
        return await instant_answer(ctx.loki, settings, principal, scanned, at_ns, chosen_limit, direction)

    return await ctx.answer(compute)


@router.get("/labels", summary="Label names (within the key's label policy)")
async def labels(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    window: WindowDep,
    query: OptionalQueryText = None,
) -> FastJSONResponse:
    return FastJSONResponse(await labels_answer(loki, principal, settings, query, window))


@router.get("/label/{name}/values", summary="Values of one label (within the key's label policy)")
async def label_values(
    name: str,
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    window: WindowDep,
    query: OptionalQueryText = None,
) -> FastJSONResponse:
    return FastJSONResponse(await label_values_answer(loki, principal, settings, name, query, window))


@router.get("/stats", summary="Index statistics (streams, chunks, entries, bytes) of a query")
async def index_stats(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
) -> FastJSONResponse:
    return FastJSONResponse(await stats_answer(loki, principal, settings, query, window))


@router.get("/patterns", summary="Detected log line patterns of a query")
async def patterns(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
    step: Step = None,
) -> FastJSONResponse:
    return FastJSONResponse(await patterns_answer(loki, principal, settings, query, window, step))


@router.get("/volume", summary="Log volume in bytes by label (Loki's index, within the key's policy)")
async def volume(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
    by: Annotated[list[str], Query(description="label names to group by (default: per stream)")] = [],  # noqa: B006
    step: Step = None,
) -> FastJSONResponse:
    return FastJSONResponse(await volume_answer(loki, principal, settings, query, window, by, step))


@router.get("/detected_fields", summary="Fields Loki detects in the query's lines (json, logfmt)")
async def detected_fields(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_DETECTED_FIELDS)] = None,
) -> FastJSONResponse:
    return FastJSONResponse(await detected_fields_answer(loki, principal, settings, query, window, limit))
