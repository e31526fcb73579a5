"""The MCP tools that read logs and what Loki knows of them: each calls the same services as the
matching REST route, with the caller's tenant and label policy; log pages always carry a byte
budget."""

from __future__ import annotations

from typing import Any

from gateway.mcp.tools.args import (
    DetectedFieldsArgs,
    LabelsArgs,
    LabelValuesArgs,
    Paging,
    PatternsArgs,
    QueryLogsArgs,
    SourceLogsArgs,
    StatsArgs,
    VolumeArgs,
)
from gateway.mcp.tools.call import ToolCall
from gateway.services.index_answers import (
    detected_fields_answer,
    label_values_answer,
    labels_answer,
    patterns_answer,
    stats_answer,
    volume_answer,
)
from gateway.services.log_filters import LogParams, filtered_query, source_filters
from gateway.services.logql import ScannedQuery
from gateway.services.loki_compat import Window
from gateway.services.query import PageAsk
from gateway.services.query_checks import (
    check_limit,
    prepare_for,
)

SOURCE_FILTER_NAMES = (
    "bucket", "prefix", "object", "collection", "doc_id", "namespace", "pod", "container", "node", "service"
)


async def _page(
    call: ToolCall, args: Paging, scanned: ScannedQuery, start_ns: int, end_ns: int, limit: int
) -> dict[str, Any]:
    ask = PageAsk(
        scanned,
        start_ns=start_ns,
        end_ns=end_ns,
        limit=limit,
        direction=args.direction,
        cursor_text=args.cursor,
        max_bytes=args.max_bytes,
        compact=args.format == "compact",
    )
    return await call.queries.page(call.key(type(args).__name__, args), ask, always_budget=True)


async def query_logs(call: ToolCall, args: QueryLogsArgs) -> dict[str, Any]:
    settings = call.settings
    limit = check_limit(args.limit, settings.query_default_limit, settings.query_max_limit)
    start_ns, end_ns = args.range_ns(settings)
    scanned = prepare_for(call.principal, args.query, settings)
    return await _page(call, args, scanned, start_ns, end_ns, limit)


async def source_logs(call: ToolCall, args: SourceLogsArgs) -> dict[str, Any]:
    given = {name: getattr(args, name) for name in SOURCE_FILTER_NAMES}
    labels, metadata = source_filters(args.source, given)
    params = LogParams(
        args.since,
        args.until,
        args.hours,
        list(args.level),
        args.q,
        args.limit,
        args.direction,
        args.cursor,
        args.max_bytes,
    )
    found = filtered_query(call.principal, call.settings, params, labels, metadata)
    return await _page(call, args, found.scanned, found.start_ns, found.end_ns, found.limit)


async def list_labels(call: ToolCall, args: LabelsArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))

    async def compute() -> dict[str, Any]:
        return await labels_answer(call.loki, call.principal, call.settings, args.query, window)

    return await call.cached("labels", args, compute)  # type: ignore[no-any-return]


async def label_values(call: ToolCall, args: LabelValuesArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))

    async def compute() -> dict[str, Any]:
        return await label_values_answer(
            call.loki, call.principal, call.settings, args.name, args.query, window
        )

    return await call.cached("label_values", args, compute)  # type: ignore[no-any-return]


async def query_stats(call: ToolCall, args: StatsArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))
    answer = await stats_answer(call.loki, call.principal, call.settings, args.query, window)
    limit = call.settings.query_max_bytes
    return {**answer, "max_query_bytes": limit, "over_limit": limit is not None and answer["bytes"] > limit}


async def log_patterns(call: ToolCall, args: PatternsArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))
    return await patterns_answer(call.loki, call.principal, call.settings, args.query, window, args.step)


async def log_volume(call: ToolCall, args: VolumeArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))
    return await volume_answer(
        call.loki, call.principal, call.settings, args.query, window, args.by, args.step
    )


async def detected_fields(call: ToolCall, args: DetectedFieldsArgs) -> dict[str, Any]:
    window = Window(*args.range_ns(call.settings))
    return await detected_fields_answer(
        call.loki, call.principal, call.settings, args.query, window, args.limit
    )


