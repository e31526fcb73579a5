"""LogQL proxy with guardrails: the client's query is scanned, the key's label policy injected into
every stream selector, selectors matching everything and over-long ranges are refused, and only
our own headers (tenant from the key) reach Loki — never the client's X-Scope-OrgID or
X-Prom-Label-Policy."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Query

from gateway.api.deps import LokiDep, Principal, SettingsDep
from gateway.api.routes.logs import (
    DEFAULT_RANGE_HOURS,
    MAX_CURSOR_CHARS,
    Direction,
    FastJSONResponse,
    FormatParam,
    LogReader,
    MaxBytes,
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
from gateway.services.logql import ScannedQuery, check_label_name, reach_back_ns
from gateway.services.loki import LokiClient, max_entries_per_query, sorted_entries
from gateway.services.offload import shape_loki_answer
from gateway.services.pagination import loki_stats, render_streams
from gateway.services.redact import redact_fields, redact_patterns
from gateway.services.times import echo_window, format_ns, parse_time_ns, resolve_range

router = APIRouter(
    prefix="/api/monitoring/logs", tags=["logql"], dependencies=[Depends(reject_unknown_params)]
)

MAX_QUERY_CHARS = 8192
MAX_DETECTED_FIELDS = 1000
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
    max_bytes: MaxBytes = None,
    format: FormatParam = "json",
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
        max_bytes=max_bytes,
        answer_format=format,
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
        echo = echo_window(at_ns - reach_ns, at_ns)

        def shape() -> dict[str, Any]:
            if data.get("resultType") == "streams":
                entries = sorted_entries(data, forward=direction == "forward")
                return {
                    "streams": render_streams(entries[:chosen_limit], redact_lines=settings.redact_log_lines),
                    "truncated": len(entries) > chosen_limit or len(entries) >= asked,
                    "next_cursor": None,
                    "window": echo,
                    "stats": loki_stats(data, min(len(entries), chosen_limit)),
                }
            return metric_answer(data, settings.redact_log_lines, echo)

        return await shape_loki_answer(shape, data)

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
    shown = [name for name in names if not name.startswith("__")]
    return FastJSONResponse({"labels": shown, "window": echo_window(start_ns, end_ns)})


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
    return FastJSONResponse({"label": name, "values": values, "window": echo_window(start_ns, end_ns)})


@router.get("/stats", summary="Index statistics (streams, chunks, entries, bytes) of a query")
async def index_stats(
    principal: LogReader,
    settings: SettingsDep,
    loki: LokiDep,
    query: QueryText,
    window: WindowDep,
) -> FastJSONResponse:
    scanned = prepare_for(principal, query, settings)
    start_ns, end_ns = window.start_ns, window.end_ns
    totals = await index_totals(loki, scanned, start_ns, end_ns, principal.tenant)
    answer: dict[str, Any] = {"query": scanned.text, **totals, "window": echo_window(start_ns, end_ns)}
    if totals["entries"] == 0 and scanned.is_log_query:
        matched = await matched_total(loki, scanned.text, start_ns, end_ns, principal.tenant)
        if matched:
            answer["note"] = (
                f"the index reports 0 entries but {matched} lines match: Loki's index statistics lag "
                "behind recently shipped lines (they count flushed chunks); for an exact count use "
                "GET /logs/<source>?aggregate=template or a count_over_time query"
            )
    return FastJSONResponse(answer)


async def index_totals(
    loki: LokiClient, scanned: ScannedQuery, start_ns: int, end_ns: int, tenant: str | None
) -> dict[str, int]:
    """Loki's index statistics summed over the query's stream selectors."""
    totals = {"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}
    for sel in scanned.selectors:
        stats = await loki.index_stats(scanned.text[sel.start : sel.end], start_ns, end_ns, tenant)
        totals = {k: totals[k] + stats[k] for k in totals}
    return totals


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
    if settings.redact_log_lines:  # a pattern is line text: password=<_> or password=hunter2
        found = await to_thread.run_sync(redact_patterns, found)
    return FastJSONResponse(
        {"query": scanned.text, **pattern_totals(found, matched), "window": echo_window(start_ns, end_ns)}
    )


async def volume_answer(
    loki: LokiClient,
    principal: Principal,
    settings: GatewaySettings,
    query: str,
    window: Window,
    by: list[str],
    step: str | None,
) -> dict[str, Any]:
    """Bytes per label set (by `by`, else per stream) of a selector's streams from Loki's index,
    largest first; over time when `step` is given. REST route and MCP tool alike."""
    names = [name for item in by for name in (part.strip() for part in item.split(",")) if name]
    for name in names:
        check_label_name(name)
    scanned = prepare_for(principal, query, settings)
    result = await loki.volume(
        scanned.text, window.start_ns, window.end_ns, principal.tenant,
        target_labels=names, step=check_step(step),
    )
    volumes: list[dict[str, Any]] = []
    for item in result:
        labels = item.get("metric") or {}
        row: dict[str, Any] = {"labels": redact_fields(labels) if settings.redact_log_lines else labels}
        if "values" in item:
            points = [[format_ns(round(float(t) * 1000) * 1_000_000), int(v)] for t, v in item["values"]]
            row["bytes"] = sum(point[1] for point in points)
            row["values"] = points
        else:
            row["bytes"] = int(item["value"][1])
        volumes.append(row)
    volumes.sort(key=lambda row: -row["bytes"])
    return {
        "query": scanned.text, "unit": "bytes", "by": names, "step": step, "volumes": volumes,
        "window": echo_window(window.start_ns, window.end_ns),
    }


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


async def detected_fields_answer(
    loki: LokiClient,
    principal: Principal,
    settings: GatewaySettings,
    query: str,
    window: Window,
    limit: int | None,
) -> dict[str, Any]:
    """The fields Loki's parsers (json, logfmt) find in the query's lines, with their types and
    cardinality: what `| json | field=...` can filter on."""
    scanned = prepare_for(principal, query, settings)
    fields = await loki.detected_fields(
        scanned.text, window.start_ns, window.end_ns, principal.tenant, limit=limit
    )
    return {"query": scanned.text, "fields": fields, "window": echo_window(window.start_ns, window.end_ns)}


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
