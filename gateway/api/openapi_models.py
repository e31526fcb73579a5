"""Response shapes as /openapi.json documents them (the routes build plain dicts for speed; these
models only describe them, and tests/gateway/test_openapi_truth.py checks real answers against
the published schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_query, limit_too_large, loki_unavailable")
    message: str
    hint: str = Field(description="what to do about it")


class ErrorEnvelope(BaseModel):
    """Every error answer of the gateway (400, 401, 403, 404, 413, 422, 429, 502, 503, 504)."""

    error: ErrorBody


class Stream(BaseModel):
    labels: dict[str, str]
    entries: list[list[Any]] = Field(
        description="[timestamp RFC 3339 with ns, line] or [timestamp, line, structured metadata object]"
    )


class Window(BaseModel):
    """The window an answer covers, as resolved from since/until/hours (until exclusive)."""

    since: str = Field(description="RFC 3339 UTC (Z)")
    until: str = Field(description="RFC 3339 UTC (Z)")


class LogPage(BaseModel):
    """One page of log lines (or, for a metric query, `result_type` and `result`)."""

    model_config = ConfigDict(extra="allow")

    streams: list[Stream] = Field(default_factory=list)
    truncated: bool = False
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")
    window: Window
    stats: dict[str, Any] = Field(default_factory=dict)


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(default=None, description="with aggregate=template")
    key: str | None = Field(default=None, description="with aggregate=label:<name> or field:<name>")
    count: int
    codes: list[str] = Field(description="error codes the sample names (code -2019, status=503)")
    levels: dict[str, int]
    first_seen: str = Field(description="RFC 3339")
    last_seen: str = Field(description="RFC 3339")
    sample: str


class OtherGroups(BaseModel):
    groups: int
    count: int


class AggregateStats(BaseModel):
    matched: int = Field(description="Loki's exact count of the matching lines in the window")
    read: int = Field(description="lines grouped (at most SUMMARY_MAX_LINES)")
    truncated: bool


class AggregateAnswer(BaseModel):
    """`aggregate=` answer: counts per group, largest first."""

    aggregate: str
    groups: list[Group]
    other: OtherGroups
    window: Window
    stats: AggregateStats


class Pattern(BaseModel):
    model_config = ConfigDict(extra="allow")

    pattern: str
    total: int
    samples: list[tuple[str, int]] = Field(description="[RFC 3339 time, lines] per bucket")
    first_seen: str | None = None
    last_seen: str | None = None


class PatternsAnswer(BaseModel):
    query: str
    patterns: list[Pattern]
    other: dict[str, int] = Field(description="`count`: matching lines no pattern accounts for")
    window: Window
    stats: dict[str, int]


class StatsAnswer(BaseModel):
    query: str
    streams: int
    chunks: int
    entries: int
    bytes: int
    note: str | None = Field(default=None, description="present when the index lags behind shipped lines")
    window: Window


class LabelsAnswer(BaseModel):
    labels: list[str]
    window: Window


class LabelValuesAnswer(BaseModel):
    label: str
    values: list[str]
    window: Window


class SummaryWindow(Window):
    previous: Window = Field(description="the window before, as long, that `new` is judged against")
    step_seconds: int


class SummaryAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    summary: str = Field(description="its first line names the top template with its count and codes")
    headline: str
    model: str | None
    query: str
    focus: str
    window: SummaryWindow
    lines_read: int
    evidence: list[dict[str, Any]]


class OverviewAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description="ok, or degraded with `reasons`")
    reasons: list[str]
    checked_at: str = Field(description="RFC 3339 UTC (Z)")
    window: Window = Field(description="the hour errors_last_hour and error_trend count")
    services: list[dict[str, Any]]
    services_note: str | None = None
    ops: dict[str, Any]
    errors_last_hour: dict[str, Any]
    error_trend: dict[str, Any] | None
