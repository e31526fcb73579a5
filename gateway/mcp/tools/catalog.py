"""The catalogue of MCP tools: name, scope, title, description, arguments and handler of each.
Every tool is read-only."""

from __future__ import annotations

from gateway.mcp.tools.args import (
    AlertsArgs,
    DetectedFieldsArgs,
    LabelsArgs,
    LabelValuesArgs,
    NoArgs,
    PatternsArgs,
    QueryLogsArgs,
    SourceLogsArgs,
    StatsArgs,
    TailArgs,
    VolumeArgs,
)
from gateway.mcp.tools.call import ToolSpec
from gateway.mcp.tools.logs import (
    detected_fields,
    label_values,
    list_labels,
    log_patterns,
    log_volume,
    query_logs,
    query_stats,
    source_logs,
)
from gateway.mcp.tools.other import alerts, service_overview, summarize, tail_logs
from gateway.services.summary_request import SummaryRequest

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
