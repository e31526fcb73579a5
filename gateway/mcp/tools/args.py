"""The MCP tools' arguments: each tool's input model, whose JSON schema is what `tools/list` shows."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.config import MIN_ANSWER_BYTES, GatewaySettings
from gateway.services.index_answers import MAX_DETECTED_FIELDS
from gateway.services.query_checks import (
    DEFAULT_RANGE_HOURS,
    MAX_CURSOR_CHARS,
    MAX_PARAM_CHARS,
    MAX_QUERY_CHARS,
    query_window,
)

MCP_TAIL_MAX_SECONDS = 60  # a tool call holds the agent: short waits, resumed with the cursor
TIME_TEXT = (
    "RFC 3339 (2026-05-01T12:00:00Z), a relative duration back from now (30m, 2h, 7d), `now` or Unix "
    "seconds/nanoseconds"
)


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
        return query_window(settings, self.since, self.until, self.hours)


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
