"""The MCP tools: each a scope, an input model (its JSON schema is what `tools/list` shows) and a
handler calling the same code as the matching REST route, with the caller's tenant and label
policy. Every tool is read-only; log answers always carry a byte budget."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from mcp_types import Tool, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from gateway.api.routes.alerts import list_alerts
from gateway.api.routes.logql import (
    MAX_DETECTED_FIELDS,
    _policy_selector,
    detected_fields_answer,
    index_totals,
    volume_answer,
)
from gateway.api.routes.logql import Window as TimeWindow
from gateway.api.routes.logs import (
    DEFAULT_RANGE_HOURS,
    MAX_CURSOR_CHARS,
    MAX_PARAM_CHARS,
    SOURCE_FILTERS,
    LogParams,
    budget_for,
    check_bytes,
    check_limit,
    check_step,
    filtered_query,
    prepare_for,
    run_log_query,
)
from gateway.api.routes.monitoring import overview
from gateway.api.routes.summary import SummaryRequest, run_summary
from gateway.api.routes.tail import tail_start
from gateway.config import MIN_ANSWER_BYTES, GatewaySettings
from gateway.container import Gateway
from gateway.errors import ApiError
from gateway.security import Principal
from gateway.services.budget import answer_size, clip_streams, exact_size
from gateway.services.cache import Cache, cached
from gateway.services.logql import check_label_name
from gateway.services.loki import LokiClient, max_entries_per_query
from gateway.services.tail import TailBatch, follow
from gateway.services.times import resolve_range

MAX_QUERY_CHARS = 8192
MCP_TAIL_MAX_SECONDS = 60  # a tool call holds the agent: short waits, resumed with the cursor
TIME_TEXT = (
    "RFC 3339 (2026-05-01T12:00:00Z), a relative duration back from now (30m, 2h, 7d), `now` or Unix "
    "seconds/nanoseconds"
)


@dataclass(frozen=True)
class ToolCall:
    """What a handler works with: the app's services and the authenticated caller."""

    gateway: Gateway
    request: Request
    principal: Principal

    @property
    def settings(self) -> GatewaySettings:
        return self.gateway.settings

    @property
    def cache(self) -> Cache:
        return self.gateway.cache

    @property
    def loki(self) -> LokiClient:
        return self.gateway.loki

    async def cached(self, tool: str, args: BaseModel, compute: Callable[[], Awaitable[Any]]) -> Any:
        """`compute()`, cached like the REST answers: per tool, arguments, tenant and policy."""
        material = json.dumps(
            [tool, args.model_dump(mode="json"), self.principal.tenant, self.principal.label_policy],
            sort_keys=True,
        )
        key = "mcp:" + hashlib.sha256(material.encode()).hexdigest()
        return await cached(self.cache, key, self.settings.cache_ttl_seconds, compute)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(Args):
    since: str | None = Field(
        default=None, max_length=64, description=f"Start of the range: {TIME_TEXT}. Default: `until` - hours."
    )
    until: str | None = Field(
        default=None, max_length=64, description=f"End of the range: {TIME_TEXT}. Default: now."
    )
    hours: float | None = Field(
        default=None,
        gt=0,
        description=f"Length of the range in hours, back from `until`, instead of `since`. "
        f"Default {DEFAULT_RANGE_HOURS:g}.",
    )

    def range_ns(self, settings: GatewaySettings) -> tuple[int, int]:
        return resolve_range(
            since=self.since,
            until=self.until,
            hours=self.hours,
            now_ns=time.time_ns(),
            default_hours=DEFAULT_RANGE_HOURS,
            max_hours=settings.query_max_range_hours,
        )


class Paging(Window):
    limit: int | None = Field(
        default=None,
        ge=1,
        description="Most entries on the page (default 100). The page may end earlier at "
        "the byte budget; then truncated=true and next_cursor continues exactly.",
    )
    direction: Literal["backward", "forward"] = Field(
        default="backward", description="backward: newest first (default); forward: oldest first."
    )
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_CHARS,
        description="next_cursor of the previous page, unchanged, with the same other arguments.",
    )
    max_bytes: int | None = Field(
        default=None,
        ge=MIN_ANSWER_BYTES,
        description="Byte budget of the answer in bytes (default 65536, the server's ANSWER_MAX_BYTES). "
        "Lines longer than a quarter of it (at most 4096 bytes) are clipped with a marker.",
    )
    format: Literal["json", "compact"] = Field(
        default="json",
        description="json (default): streams of [ts, line]; compact: `text` holding each stream's labels "
        "once and one `ts line` row per entry (fewer bytes per entry, so more entries per budget).",
    )


class QueryLogsArgs(Paging):
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description='A LogQL log query, e.g. {source="gcs", level="error"} |= "timeout". Your key\'s label '
        "policy is added to every selector.",
    )


class SourceLogsArgs(Paging):
    source: Literal["gcs", "firestore", "pods"] = Field(description="Which shipped source to read.")
    level: list[Literal["debug", "info", "warn", "error", "critical", "unknown"]] = Field(
        default_factory=list, description="Only these levels (default: all)."
    )
    q: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="Substring the line must contain."
    )
    service: str | None = Field(default=None, max_length=MAX_PARAM_CHARS, description="service_name label.")
    bucket: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="gcs only: bucket label."
    )
    prefix: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="gcs only: prefix label, e.g. trades."
    )
    object: str | None = Field(default=None, max_length=MAX_PARAM_CHARS, description="gcs only: object name.")
    collection: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="firestore only: collection label."
    )
    doc_id: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="firestore only: document id."
    )
    namespace: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="pods only: namespace."
    )
    pod: str | None = Field(default=None, max_length=MAX_PARAM_CHARS, description="pods only: pod name.")
    container: str | None = Field(
        default=None, max_length=MAX_PARAM_CHARS, description="pods only: container."
    )
    node: str | None = Field(default=None, max_length=MAX_PARAM_CHARS, description="pods only: node name.")


class LabelsArgs(Window):
    query: str | None = Field(
        default=None,
        max_length=MAX_QUERY_CHARS,
        description="Optional LogQL selector narrowing which streams' labels are listed.",
    )


class LabelValuesArgs(LabelsArgs):
    name: str = Field(min_length=1, max_length=256, description="The label name, e.g. service_name.")


class StatsArgs(Window):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="A LogQL query.")


class PatternsArgs(StatsArgs):
    step: str | None = Field(
        default=None,
        max_length=16,
        description="Resolution of the pattern counts, e.g. 5m (default: Loki's).",
    )


class VolumeArgs(StatsArgs):
    by: list[str] = Field(
        default_factory=list,
        max_length=8,
        description='Label names to group the volume by, e.g. ["service_name"] (default: per stream).',
    )
    step: str | None = Field(
        default=None, max_length=16, description="Give e.g. 5m for volume over time (default: one total)."
    )


class DetectedFieldsArgs(StatsArgs):
    limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DETECTED_FIELDS,
        description="Most fields returned (default: Loki's, 1000).",
    )


class TailArgs(Args):
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description='A LogQL log query, e.g. {source="pod"} |= "error".',
    )
    since: str | None = Field(
        default=None,
        max_length=64,
        description=f"Where to start: {TIME_TEXT}. Default: now (only new lines).",
    )
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_CHARS,
        description="next_cursor of a previous tail_logs call (or a forward query_logs page): resume there.",
    )
    max_seconds: float = Field(
        default=10, gt=0, le=MCP_TAIL_MAX_SECONDS, description="Seconds to wait for new lines (default 10)."
    )
    max_lines: int = Field(default=100, ge=1, le=1000, description="Most lines returned (default 100).")
    max_bytes: int | None = Field(
        default=None, ge=MIN_ANSWER_BYTES, description="Byte budget of the answer in bytes (default 65536)."
    )


class AlertsArgs(Args):
    status: Literal["firing", "resolved", "all"] = Field(
        default="all", description="Which alerts (default all)."
    )
    limit: int = Field(
        default=100, ge=1, le=1000, description="Most alerts returned, newest first (default 100)."
    )


class NoArgs(Args):
    pass


Handler = Callable[[ToolCall, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    scope: str
    title: str
    description: str
    args: type[BaseModel]
    handler: Handler

    def tool(self) -> Tool:
        return Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.args.model_json_schema(),
            annotations=ToolAnnotations(
                title=self.title,
                read_only_hint=True,
                destructive_hint=False,
                idempotent_hint=True,
                open_world_hint=False,
            ),
        )


async def _page(call: ToolCall, args: Paging, scanned: Any, start_ns: int, end_ns: int, limit: int) -> Any:
    budget = budget_for(call.settings, args.max_bytes, always=True)

    async def compute() -> dict[str, Any]:
        return await run_log_query(
            loki=call.loki,
            settings=call.settings,
            principal=call.principal,
            scanned=scanned,
            start_ns=start_ns,
            end_ns=end_ns,
            limit=limit,
            direction=args.direction,
            cursor_text=args.cursor,
            budget=budget,
            compact=args.format == "compact",
        )

    return await call.cached(type(args).__name__, args, compute)


async def query_logs(call: ToolCall, args: QueryLogsArgs) -> dict[str, Any]:
    settings = call.settings
    limit = check_limit(args.limit, settings.query_default_limit, settings.query_max_limit)
    start_ns, end_ns = args.range_ns(settings)
    scanned = prepare_for(call.principal, args.query, settings)
    return await _page(call, args, scanned, start_ns, end_ns, limit)  # type: ignore[no-any-return]


async def source_logs(call: ToolCall, args: SourceLogsArgs) -> dict[str, Any]:
    source_label, label_filters, metadata_filters = SOURCE_FILTERS[args.source]
    given = {
        name
        for name in (
            "bucket",
            "prefix",
            "object",
            "collection",
            "doc_id",
            "namespace",
            "pod",
            "container",
            "node",
        )
        if getattr(args, name)
    }
    foreign = sorted(given - set(label_filters) - set(metadata_filters))
    if foreign:
        raise ApiError(
            400,
            "invalid_filter",
            f"{', '.join(foreign)} do(es) not apply to source {args.source!r}",
            f"{args.source} takes: {', '.join(sorted({*label_filters, *metadata_filters, 'level', 'q'}))}",
        )
    labels: dict[str, str | list[str]] = {"source": source_label}
    for name in label_filters:
        labels["service_name" if name == "service" else name] = getattr(args, name) or ""
    metadata = {name: getattr(args, name) or "" for name in metadata_filters}
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
    return await _page(  # type: ignore[no-any-return]
        call, args, found.scanned, found.start_ns, found.end_ns, found.limit
    )


async def list_labels(call: ToolCall, args: LabelsArgs) -> dict[str, Any]:
    start_ns, end_ns = args.range_ns(call.settings)
    selector = _policy_selector(call.principal, call.settings, args.query)

    async def compute() -> dict[str, Any]:
        names = await call.loki.labels(
            start_ns=start_ns, end_ns=end_ns, query=selector, tenant=call.principal.tenant
        )
        return {"labels": names}

    return await call.cached("labels", args, compute)  # type: ignore[no-any-return]


async def label_values(call: ToolCall, args: LabelValuesArgs) -> dict[str, Any]:
    check_label_name(args.name)
    start_ns, end_ns = args.range_ns(call.settings)
    selector = _policy_selector(call.principal, call.settings, args.query)

    async def compute() -> dict[str, Any]:
        values = await call.loki.label_values(
            args.name, start_ns=start_ns, end_ns=end_ns, query=selector, tenant=call.principal.tenant
        )
        return {"label": args.name, "values": values}

    return await call.cached("label_values", args, compute)  # type: ignore[no-any-return]


async def query_stats(call: ToolCall, args: StatsArgs) -> dict[str, Any]:
    start_ns, end_ns = args.range_ns(call.settings)
    scanned = prepare_for(call.principal, args.query, call.settings)
    totals = await index_totals(call.loki, scanned, start_ns, end_ns, call.principal.tenant)
    limit = call.settings.query_max_bytes
    return {
        "query": scanned.text,
        **totals,
        "max_query_bytes": limit,
        "over_limit": limit is not None and totals["bytes"] > limit,
    }


async def log_patterns(call: ToolCall, args: PatternsArgs) -> dict[str, Any]:
    settings, principal = call.settings, call.principal
    start_ns, end_ns = args.range_ns(settings)
    scanned = prepare_for(principal, args.query, settings)
    await check_bytes(call.loki, scanned, start_ns, end_ns, principal.tenant, settings.query_max_bytes)
    found = await call.loki.patterns(
        scanned.text, start_ns, end_ns, principal.tenant, step=check_step(args.step)
    )
    return {"query": scanned.text, "patterns": found}


async def log_volume(call: ToolCall, args: VolumeArgs) -> dict[str, Any]:
    window = TimeWindow(*args.range_ns(call.settings))
    return await volume_answer(
        call.loki, call.principal, call.settings, args.query, window, args.by, args.step
    )


async def detected_fields(call: ToolCall, args: DetectedFieldsArgs) -> dict[str, Any]:
    window = TimeWindow(*args.range_ns(call.settings))
    return await detected_fields_answer(
        call.loki, call.principal, call.settings, args.query, window, args.limit
    )


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
    return await list_alerts(call.gateway.alerts, call.principal, call.settings, args.status, args.limit)


PAGE_NOTE = (
    " Answer: {streams: [{labels, entries: [[ts, line, metadata?]]}], truncated, next_cursor, stats}; "
    "when truncated is true, call again with cursor=next_cursor for the rest."
)

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "query_logs",
        "logs:read",
        "Query logs (LogQL)",
        "Run a LogQL log query over a time range (default: the last hour), newest first. "
        "Use list_labels / label_values first to find label values." + PAGE_NOTE,
        QueryLogsArgs,
        query_logs,
    ),
    ToolSpec(
        "source_logs",
        "logs:read",
        "Logs of one source",
        "Logs shipped from GCS objects, Firestore documents or Kubernetes pods, filtered by level, "
        "substring and the source's own fields; no LogQL needed." + PAGE_NOTE,
        SourceLogsArgs,
        source_logs,
    ),
    ToolSpec(
        "list_labels",
        "logs:read",
        "Label names",
        "Label names present in the range (within your key's label policy).",
        LabelsArgs,
        list_labels,
    ),
    ToolSpec(
        "label_values",
        "logs:read",
        "Values of a label",
        "The values one label takes in the range (within your key's label policy), e.g. name=service_name.",
        LabelValuesArgs,
        label_values,
    ),
    ToolSpec(
        "query_stats",
        "logs:read",
        "Query cost estimate",
        "Loki's index statistics for a query's streams in the range: streams, chunks, entries and bytes "
        "(the cost of reading them), and whether bytes exceed the gateway's per-query limit.",
        StatsArgs,
        query_stats,
    ),
    ToolSpec(
        "log_patterns",
        "logs:read",
        "Log line patterns",
        "Patterns Loki detected in the query's lines, with counts over time: a compact view of what "
        "the logs say.",
        PatternsArgs,
        log_patterns,
    ),
    ToolSpec(
        "log_volume",
        "logs:read",
        "Log volume",
        "Bytes of logs per label value (e.g. by service_name or level) from Loki's index, largest "
        "first; with step, over time. Cheap: reads no lines. The query must be a bare selector.",
        VolumeArgs,
        log_volume,
    ),
    ToolSpec(
        "detected_fields",
        "logs:read",
        "Fields in the lines",
        "The fields Loki's json/logfmt parsers find in the query's lines, with type, cardinality and "
        'parser: use them to write `| json | field="value"` (or `| logfmt | ...`) right the first time.',
        DetectedFieldsArgs,
        detected_fields,
    ),
    ToolSpec(
        "tail_logs",
        "logs:read",
        "Follow new log lines",
        "Wait up to max_seconds for new lines of a log query (from now, `since`, or a cursor) and return "
        "them with next_cursor; call again with that cursor to keep following. reason says why it "
        "stopped: max_seconds, max_lines or max_bytes.",
        TailArgs,
        tail_logs,
    ),
    ToolSpec(
        "summarize_logs",
        "summary",
        "Summarize logs",
        "An evidence-first summary of a selector's (or source's) lines over a window (default: the "
        "last hour): message templates with counts and samples, compared with the previous window.",
        SummaryRequest,
        summarize,
    ),
    ToolSpec(
        "service_overview",
        "monitoring:read",
        "Service overview",
        "Health of the configured services and of Loki/Prometheus/Alertmanager, and error counts per "
        "source over the last hour.",
        NoArgs,
        service_overview,
    ),
    ToolSpec(
        "list_alerts",
        "alerts:read",
        "Recent alerts",
        "Recent Alertmanager notifications, most recently updated first, with their log context.",
        AlertsArgs,
        alerts,
    ),
)
TOOLS_BY_NAME = {spec.name: spec for spec in TOOLS}
