"""The MCP tools beside log queries: following new lines, summaries, the service overview and
recent alerts, each through the same services as the matching REST route."""

from __future__ import annotations

from typing import Any

from gateway.mcp.tools.args import AlertsArgs, NoArgs, TailArgs
from gateway.mcp.tools.call import ToolCall
from gateway.services.alerts import ContextScope
from gateway.services.budget import answer_size, clip_streams, exact_size
from gateway.services.loki import max_entries_per_query
from gateway.services.overview import overview
from gateway.services.query_checks import budget_for
from gateway.services.summary_request import SummaryRequest, run_summary
from gateway.services.tail import TailBatch, follow, tail_start


async def tail_logs(call: ToolCall, args: TailArgs) -> dict[str, Any]:
    """Batches of new lines until max_seconds or max_lines, stopping before the batch that would
    pass the byte budget (its cursor is then the previous batch's: nothing is skipped)."""
    settings, principal = call.settings, call.principal
    budget = budget_for(settings, args.max_bytes, always=True)
    assert budget is not None
    seconds = min(args.max_seconds, settings.tail_max_seconds)
    scanned, digest, start = tail_start(principal, settings, args.query, args.since, args.cursor)
    slots = call.gateway.tail_slots
    slots.acquire(principal.key_id)
    answer: dict[str, Any] = {
        "streams": [],
        "next_cursor": start.encode(),
        "reason": "max_seconds",
        "stats": {},
    }
    returned = clipped = 0
    try:
        async for item in follow(
            call.loki,
            scanned,
            tenant=principal.tenant,
            digest=digest,
            start=start,
            max_seconds=seconds,
            max_lines=min(args.max_lines, settings.tail_max_lines),
            poll_seconds=settings.tail_poll_seconds,
            max_entries=max_entries_per_query(settings),
            redact_lines=settings.redact_log_lines,
        ):
            if not isinstance(item, TailBatch):
                answer["reason"] = item.reason
                break
            batch_clipped, _ = clip_streams(item.streams, budget.line_bytes)
            grown = {**answer, "streams": answer["streams"] + item.streams, "next_cursor": item.next_cursor}
            if answer_size(grown) + 200 > budget.max_bytes:  # 200: the stats still to come
                answer["reason"] = "max_bytes"
                break
            answer, returned, clipped = grown, returned + item.returned, clipped + batch_clipped
    finally:
        slots.release(principal.key_id)
    answer["stats"] = {"entries": returned, "lines_clipped": clipped, "budget_bytes": budget.max_bytes}
    exact_size(answer)  # sets stats.answer_bytes
    return answer


async def summarize(call: ToolCall, args: SummaryRequest) -> dict[str, Any]:
    return await run_summary(args, call.principal, call.settings, call.loki, call.gateway.summarizer)


async def service_overview(call: ToolCall, _: NoArgs) -> dict[str, Any]:
    gateway = call.gateway
    return await overview(
        call.principal, gateway.http, call.settings, call.cache, call.loki, gateway.upstreams
    )


async def alerts(call: ToolCall, args: AlertsArgs) -> dict[str, Any]:
    principal = call.principal
    scope = ContextScope(principal.label_policy, principal.tenant or call.settings.loki_tenant_id)
    return await call.gateway.alerts.recent(args.status, args.limit, scope)


