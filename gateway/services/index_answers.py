"""Answers of the LogQL proxy beside paged queries: the instant query, and what Loki's index and
pattern detection know of a query's streams (label names and values, statistics, patterns,
volume, detected fields). REST routes and MCP tools alike; every query is policy-scoped first."""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.aggregate import matched_total, pattern_totals
from gateway.services.logql import ScannedQuery, check_label_name, reach_back_ns
from gateway.services.loki import LokiClient, max_entries_per_query, sorted_entries
from gateway.services.loki_compat import Window
from gateway.services.offload import shape_loki_answer
from gateway.services.pagination import loki_stats, render_streams
from gateway.services.query import metric_answer
from gateway.services.query_checks import check_bytes, check_step, index_totals, policy_selector, prepare_for
from gateway.services.redact import redact_fields, redact_patterns
from gateway.services.times import echo_window, format_ns

MAX_DETECTED_FIELDS = 1000


async def instant_answer(
    loki: LokiClient,
    settings: GatewaySettings,
    principal: Principal,
    scanned: ScannedQuery,
    at_ns: int,
    limit: int,
    direction: str,
) -> dict[str, Any]:
    """An instant query at `at_ns`: its first `limit` entries (no paging), or its metric result."""
    reach_ns = reach_back_ns(scanned)  # a metric query reads [time - range - offset, time]
    asked = min(limit + 1, max_entries_per_query(settings))  # one more: is there more?
    data = await loki.query(
        scanned.text, time_ns=at_ns, limit=asked, direction=direction, tenant=principal.tenant
    )
    echo = echo_window(at_ns - reach_ns, at_ns)

    def shape() -> dict[str, Any]:
        if data.get("resultType") == "streams":
            entries = sorted_entries(data, forward=direction == "forward")
            return {
                "streams": render_streams(entries[:limit], redact_lines=settings.redact_log_lines),
                "truncated": len(entries) > limit or len(entries) >= asked,
                "next_cursor": None,
                "window": echo,
                "stats": loki_stats(data, min(len(entries), limit)),
            }
        return metric_answer(data, settings.redact_log_lines, echo)

    return await shape_loki_answer(shape, data)


async def check_instant_bytes(
    loki: LokiClient, settings: GatewaySettings, principal: Principal, scanned: ScannedQuery, at_ns: int
) -> None:
    """The byte guardrail of an instant metric query, over the range it reads back."""
    reach_ns = reach_back_ns(scanned)
    if reach_ns:
        max_bytes = settings.query_max_bytes
        await check_bytes(loki, scanned, at_ns - reach_ns, at_ns, principal.tenant, max_bytes)


async def labels_answer(
    loki: LokiClient, principal: Principal, settings: GatewaySettings, query: str | None, window: Window
) -> dict[str, Any]:
    """Label names of the streams the key may see (and `query` selects)."""
    names = await loki.labels(
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        query=policy_selector(principal, settings, query),
        tenant=principal.tenant,
    )
    # Loki's own internal labels (__stream_shard__) are no filter a caller can use
    shown = [name for name in names if not name.startswith("__")]
    return {"labels": shown, "window": echo_window(window.start_ns, window.end_ns)}


async def label_values_answer(
    loki: LokiClient,
    principal: Principal,
    settings: GatewaySettings,
    name: str,
    query: str | None,
    window: Window,
) -> dict[str, Any]:
    """Values of one label among the streams the key may see (and `query` selects)."""
    check_label_name(name)
    values = await loki.label_values(
        name,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        query=policy_selector(principal, settings, query),
        tenant=principal.tenant,
    )
    return {"label": name, "values": values, "window": echo_window(window.start_ns, window.end_ns)}


async def stats_answer(
    loki: LokiClient, principal: Principal, settings: GatewaySettings, query: str, window: Window
) -> dict[str, Any]:
    """Loki's index statistics of the query's streams, with a note when the index lags behind."""
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
    return answer


async def patterns_answer(
    loki: LokiClient,
    principal: Principal,
    settings: GatewaySettings,
    query: str,
    window: Window,
    step: str | None,
) -> dict[str, Any]:
    """The patterns Loki detected in the query's lines, with totals, redacted."""
    start_ns, end_ns = window.start_ns, window.end_ns
    scanned = prepare_for(principal, query, settings)
    await check_bytes(loki, scanned, start_ns, end_ns, principal.tenant, settings.query_max_bytes)
    matched = await matched_total(loki, scanned.text, start_ns, end_ns, principal.tenant)
    found = await loki.patterns(scanned.text, start_ns, end_ns, principal.tenant, step=check_step(step))
    if settings.redact_log_lines:  # a pattern is line text: password=<_> or password=hunter2
        found = await to_thread.run_sync(redact_patterns, found)
    return {"query": scanned.text, **pattern_totals(found, matched), "window": echo_window(start_ns, end_ns)}


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
