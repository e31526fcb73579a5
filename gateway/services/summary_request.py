"""A summary request: what it asks for (a selector or label fields, a window, a focus), checked and
turned into the policy-scoped SummaryQuery gateway.services.summarize answers (REST route and MCP
tool alike)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.errors import QueryError
from gateway.services.logql import build_log_query, scan_query
from gateway.services.loki import LokiClient
from gateway.services.query_checks import check_bytes, prepare_for
from gateway.services.summarize import (
    Summarizer,
    SummaryQuery,
    round_window,
    selector_from_labels,
)
from gateway.services.times import SupportedDatetime, resolve_range

DEFAULT_WINDOW_SECONDS = 3600
SHIPPED_SOURCES = ("gcs", "firestore", "pod")  # the default when neither selector nor source is given
MAX_SELECTOR_CHARS = 2000
_NS = 1_000_000_000
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$"
# a filter that exists on one source only implies that source
FILTER_SOURCE = {"bucket": "gcs", "prefix": "gcs", "collection": "firestore", "namespace": "pod"}



class SummaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: str | None = Field(
        default=None,
        max_length=MAX_SELECTOR_CHARS,
        description='A LogQL log query, e.g. {source="pod", service_name="api"} |= "timeout".',
    )
    source: Literal["gcs", "firestore", "pod", "gateway"] | None = None
    service_name: str | None = Field(default=None, pattern=LABEL_VALUE_PATTERN)
    bucket: str | None = Field(default=None, pattern=LABEL_VALUE_PATTERN, description="GCS bucket")
    prefix: str | None = Field(
        default=None, pattern=LABEL_VALUE_PATTERN, description="GCS prefix label, e.g. trades"
    )
    collection: str | None = Field(
        default=None, pattern=LABEL_VALUE_PATTERN, description="Firestore collection"
    )
    namespace: str | None = Field(
        default=None, pattern=LABEL_VALUE_PATTERN, description="Kubernetes namespace"
    )
    start: SupportedDatetime | None = Field(default=None, description="RFC 3339; default: end minus one hour")
    end: SupportedDatetime | None = Field(default=None, description="RFC 3339; default: now")
    since: str | None = Field(
        default=None, max_length=64,
        description="Instead of start: RFC 3339, relative (30m, 2h, 7d, now-2h) or Unix time",
    )
    until: str | None = Field(
        default=None, max_length=64, description="Instead of end: RFC 3339, relative or Unix; default now"
    )
    hours: float | None = Field(
        default=None, gt=0, description="Window length in hours back from until; default 1"
    )
    focus: Literal["errors", "all"] = "all"
    max_lines: int | None = Field(default=None, ge=1)


def _as_ns(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


def _query(body: SummaryRequest) -> str:
    filters = {name: getattr(body, name) for name in FILTER_SOURCE if getattr(body, name)}
    if body.selector and (body.source or body.service_name or filters):
        raise QueryError(
            "invalid_request",
            "give either `selector` or the label fields (source, service_name, "
            f"{', '.join(FILTER_SOURCE)}), not both",
            "put the label matchers into the selector",
        )
    if body.selector:
        return body.selector
    source: str | None = body.source
    for name in filters:
        implied = FILTER_SOURCE[name]
        if source not in (None, implied):
            raise QueryError(
                "invalid_request", f"`{name}` is a label of source {implied!r}, not {source!r}",
                f'use "source": "{implied}" or drop `{name}`',
            )
        source = implied
    labels = {"source": source or "", "service_name": body.service_name or "", **filters}
    return selector_from_labels(labels) or build_log_query({"source": SHIPPED_SOURCES})


def _window_ns(body: SummaryRequest, settings: GatewaySettings) -> tuple[int, int]:
    """The window from start/end (datetimes) or, as on every other route, since/until/hours."""
    if body.since is None and body.until is None and body.hours is None:
        end_ns = _as_ns(body.end) if body.end else time.time_ns()
        return (_as_ns(body.start) if body.start else end_ns - DEFAULT_WINDOW_SECONDS * _NS), end_ns
    if body.start is not None or body.end is not None:
        raise QueryError(
            "invalid_time", "give start/end or since/until/hours, not both",
            "since and until are the other routes' names for start and end",
        )
    return resolve_range(
        since=body.since, until=body.until, hours=body.hours, now_ns=time.time_ns(),
        default_hours=DEFAULT_WINDOW_SECONDS / 3600, max_hours=settings.query_max_range_hours,
    )


def summary_query(body: SummaryRequest, settings: GatewaySettings, principal: Principal) -> SummaryQuery:
    start_ns, end_ns = _window_ns(body, settings)
    if start_ns >= end_ns:
        raise QueryError("invalid_range", "start must be before end", "omit both for the last hour")
    if start_ns - (end_ns - start_ns) < 0:  # the previous window, compared with, must exist too
        raise QueryError(
            "invalid_range", "the window and the equally long one before it must start after 1970",
            "omit both for the last hour",
        )
    if end_ns - start_ns > settings.query_max_range_hours * 3600 * _NS:
        raise QueryError(
            "range_too_long",
            f"the window is longer than {settings.query_max_range_hours:g} hours",
            "summarize a shorter window",
        )
    max_lines = body.max_lines or settings.summary_max_lines
    if max_lines > settings.summary_max_lines:
        raise QueryError(
            "max_lines_too_large",
            f"max_lines may be at most {settings.summary_max_lines}",
            "omit max_lines to use the maximum",
        )
    start_ns, end_ns = round_window(start_ns, end_ns)
    scanned = prepare_for(principal, _query(body), settings)  # 403 when the key's own policy is broken
    if not scanned.is_log_query:
        raise QueryError(
            "invalid_selector", "summaries need a log query, not a metric query",
            'e.g. {source="pod"} |= "error"',
        )
    return SummaryQuery(
        query=scanned.text,
        start_ns=start_ns,
        end_ns=end_ns,
        focus=body.focus,
        max_lines=max_lines,
        tenant=principal.tenant,
        prompt_max_bytes=settings.summary_prompt_max_bytes,
    )


async def run_summary(
    body: SummaryRequest,
    principal: Principal,
    settings: GatewaySettings,
    loki: LokiClient,
    summarizer: Summarizer,
) -> dict[str, Any]:
    """The summary of `body` as this key may see it (REST route and MCP tool alike)."""
    query = summary_query(body, settings, principal)
    read_from_ns = query.start_ns - (query.end_ns - query.start_ns)  # the previous window is read too
    scanned = scan_query(query.query)
    await check_bytes(loki, scanned, read_from_ns, query.end_ns, principal.tenant, settings.query_max_bytes)
    return await summarizer.summarize(query)
