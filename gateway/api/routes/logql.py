"""LogQL proxy with guardrails: the client's query is scanned, the key's label policy injected into
every stream selector, selectors matching everything and over-long ranges are refused, and only
our own headers (tenant from the key) reach Loki — never the client's X-Scope-OrgID or
X-Prom-Label-Policy."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway.api.deps import LokiDep, Principal, SettingsDep
from gateway.api.routes.logs import (
    DEFAULT_RANGE_HOURS,
    MAX_CURSOR_CHARS,
    Direction,
    FastJSONResponse,
    LogReader,
    QueryContextDep,
    check_bytes,
    check_limit,
    check_step,
    metric_answer,
    prepare_for,
    reject_unknown_params,
)
from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.services.aggregate import matched_total, pattern_totals
from gateway.services.logql import check_label_name, parse_time_ns, reach_back_ns, resolve_range
from gateway.services.loki import max_entries_per_query, sorted_entries
from gateway.services.pagination import loki_stats, render_streams

router = APIRouter(
    prefix="/api/monitoring/logs", tags=["logql"], dependencies=[Depends(reject_unknown_params)]
)

MAX_QUERY_CHARS = 8192
QueryText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="LogQL")]
OptionalQueryText = Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)]
TimeText = Annotated[str | None, Query(max_length=64, description="RFC 3339, relative (2h) or Unix time")]
Hours = Annotated[float | None, Query(gt=0)]
Step = Annotated[str | None, Query(max_length=16, description="metric query resolution, e.g. 1m")]


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int


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
    start_ns, end_ns = resolve_range(
        since=_one_of("since", since, "start", start),
        until=_one_of("until", until, "end", end),
        hours=hours,
        now_ns=time.time_ns(),
        default_hours=DEFAULT_RANGE_HOURS,
        max_hours=settings.query_max_range_hours,
    )
    return Window(start_ns, end_ns)


WindowDep = Annotated[Window, Depends(time_window)]


def _policy_selector(principal: Principal, settings: GatewaySettings, query: str | None) -> str | None:
    """The selector to scope label listings: the client's (with the policy injected) or the policy."""
    if query:
        return prepare_for(principal, query, settings).text
    return principal.label_policy


@router.get("/query_range", summary="LogQL range query (logs or metrics), paginated for logs")
async def query_range(
    ctx: QueryContextDep,
    query: QueryText,
    window: WindowDep,
    limit: Annotated[int | None, Query(ge=1)] = None,
    direction: Direction = "backward",
    step: Step = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> FastJSONResponse:
    chosen_limit = check_limit(limit, ctx.settings.query_default_limit, ctx.settings.query_max_limit)
    return await ctx.answer_page(
        prepare_for(ctx.principal, query, ctx.settings),
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        limit=chosen_limit,
        direction=direction,
        cursor_text=cursor,
        step=step,
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
    reach_ns = reach_back_ns(scanned)  # a metric query reads [time - range - offset, time]
    if reach_ns:
        max_bytes = settings.query_max_bytes
        await check_bytes(ctx.loki, scanned, at_ns - reach_ns, at_ns, principal.tenant, max_bytes)

    async def compute() -> dict[str, Any]:
        asked = min(chosen_limit + 1, max_entries_per_query(settings))  # see run_log_query
        data = await ctx.loki.query(
            scanned.text, time_ns=at_ns, limit=asked, direction=direction, tenant=principal.tenant
        )
        if data.get("resultType") == "streams":
            entries = sorted_entries(data, forward=direction == "forward")
            return {
                "streams": render_streams(entries[:chosen_limit], redact_lines=settings.redact_log_lines),
                "truncated": len(entries) > chosen_limit or len(entries) >= asked,
                "next_cursor": None,
                "stats": loki_stats(data, min(len(entries), chosen_limit)),
            }
        return metric_answer(data, settings.redact_log_lines)

    return await ctx.answer(compute)


@router.get("/labels", summary="Label names (within the key's label policy)")
async def labels(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    window: WindowDep,
    query: OptionalQueryText = None,
) -> FastJSONResponse:
    start_ns, end_ns = window.start_ns, window.end_ns
    names = await loki.labels(
        start_ns=start_ns,
        end_ns=end_ns,
        query=_policy_selector(principal, settings, query),
        tenant=principal.tenant,
    )
    # Loki's own internal labels (__stream_shard__) are no filter a caller can use
    return FastJSONResponse({"labels": [name for name in names if not name.startswith("__")]})


@router.get("/label/{name}/values", summary="Values of one label (within the key's label policy)")
async def label_values(
    name: str,
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    window: WindowDep,
    query: OptionalQueryText = None,
) -> FastJSONResponse:
    check_label_name(name)
    start_ns, end_ns = window.start_ns, window.end_ns
    values = await loki.label_values(
        name,
        start_ns=start_ns,
        end_ns=end_ns,
        query=_policy_selector(principal, settings, query),
        tenant=principal.tenant,
    )
    return FastJSONResponse({"label": name, "values": values})


@router.get("/stats", summary="Index statistics (streams, chunks, entries, bytes) of a query")
async def index_stats(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
) -> FastJSONResponse:
    start_ns, end_ns = window.start_ns, window.end_ns
    scanned = prepare_for(principal, query, settings)
    totals = {"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}
    for sel in scanned.selectors:
        stats = await loki.index_stats(scanned.text[sel.start : sel.end], start_ns, end_ns, principal.tenant)
        totals = {k: totals[k] + stats[k] for k in totals}
    answer: dict[str, Any] = {"query": scanned.text, **totals}
    if totals["entries"] == 0 and scanned.is_log_query:
        matched = await matched_total(loki, scanned.text, start_ns, end_ns, principal.tenant)
        if matched:
            answer["note"] = (
                f"the index reports 0 entries but {matched} lines match: Loki's index statistics lag "
                "behind recently shipped lines (they count flushed chunks); for an exact count use "
                "GET /logs/<source>?aggregate=template or a count_over_time query"
            )
    return FastJSONResponse(answer)


@router.get("/patterns", summary="Detected log line patterns of a query")
async def patterns(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
    step: Step = None,
) -> FastJSONResponse:
    start_ns, end_ns = window.start_ns, window.end_ns
    scanned = prepare_for(principal, query, settings)
    await check_bytes(loki, scanned, start_ns, end_ns, principal.tenant, settings.query_max_bytes)
    matched = await matched_total(loki, scanned.text, start_ns, end_ns, principal.tenant)
    found = await loki.patterns(scanned.text, start_ns, end_ns, principal.tenant, step=check_step(step))
    return FastJSONResponse({"query": scanned.text, **pattern_totals(found, matched)})
