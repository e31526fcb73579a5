"""Query parameters the log routes share (their names, bounds and descriptions are the API), and
the dependency refusing parameters a route does not take."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from gateway.api.deps import Principal, require_scope
from gateway.config import MIN_ANSWER_BYTES
from gateway.errors import ApiError
from gateway.services.aggregate import AGGREGATE_HINT, DEFAULT_GROUPS, MAX_GROUPS
from gateway.services.log_filters import AnswerFormat, Direction, LogParams
from gateway.services.query_checks import MAX_CURSOR_CHARS, MAX_PARAM_CHARS, MAX_QUERY_CHARS

LogReader = Annotated[Principal, Depends(require_scope("logs:read"))]
FormatParam = Annotated[
    AnswerFormat,
    Query(
        description="json (default): streams of [ts, line]; compact: `text` with each stream's labels "
        "once and one `ts line` row per entry"
    ),
]
MaxBytes = Annotated[
    int | None,
    Query(
        ge=MIN_ANSWER_BYTES,
        description="byte budget of the answer in bytes (default: ANSWER_MAX_BYTES, 65536; at most "
        "ANSWER_MAX_BYTES_LIMIT); the page ends where it is spent, with truncated=true and next_cursor",
    ),
]
CursorText = Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)]
Filter = Annotated[str | None, Query(max_length=MAX_PARAM_CHARS)]
QueryText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="LogQL")]
OptionalQueryText = Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)]
TimeText = Annotated[str | None, Query(max_length=64, description="RFC 3339, relative (2h) or Unix time")]
Hours = Annotated[float | None, Query(gt=0)]
Step = Annotated[str | None, Query(max_length=16, description="metric query resolution, e.g. 1m")]


def _declared_query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in getattr(dependant, "query_params", ())}
    for sub in getattr(dependant, "dependencies", ()):
        names |= _declared_query_names(sub)
    return names


async def reject_unknown_params(request: Request, _: LogReader) -> None:
    """A misspelt filter (levels=, sice=) must not be dropped silently: the answer would look
    like a real, unfiltered result. Runs after authentication (the scope check is shared).
    Dependencies here are `async def` although they never wait: FastAPI runs plain `def`
    dependencies in its thread pool, a thread hop per dependency and request."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _declared_query_names(dependant))
    if unknown:
        raise ApiError(
            400,
            "unknown_parameter",
            f"unknown query parameter(s): {', '.join(unknown)}",
            f"this endpoint takes: {', '.join(sorted(_declared_query_names(dependant)))}",
        )


async def log_params(
    since: Annotated[
        str | None, Query(max_length=64, description="RFC 3339, or relative like 2h, 30m, 7d")
    ] = None,
    until: Annotated[
        str | None, Query(max_length=64, description="RFC 3339 or relative; default now")
    ] = None,
    hours: Annotated[
        float | None, Query(gt=0, description="range back from `until`; instead of since")
    ] = None,
    level: Annotated[list[str], Query(description="debug info warn error critical unknown")] = [],  # noqa: B006
    q: Annotated[
        str | None, Query(max_length=MAX_PARAM_CHARS, description="substring the line must contain")
    ] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    direction: Direction = "backward",
    cursor: CursorText = None,
    max_bytes: MaxBytes = None,
    format: FormatParam = "json",
    aggregate: Annotated[
        str | None,
        Query(
            max_length=140,
            description="Count instead of listing: `template` (lines grouped by message template), "
            "`label:<name>` or `field:<JSON field>`. The answer has `groups` (count, codes, levels, "
            "first_seen, last_seen, one sample each, largest first), `other` (the groups not shown) "
            "and `stats.matched` (Loki's exact count of matching lines). " + AGGREGATE_HINT,
        ),
    ] = None,
    groups: Annotated[
        int, Query(ge=1, le=MAX_GROUPS, description="with `aggregate`: how many groups to show")
    ] = DEFAULT_GROUPS,
) -> LogParams:
    return LogParams(
        since, until, hours, level, q, limit, direction, cursor, max_bytes, format, aggregate, groups
    )


LogParamsDep = Annotated[LogParams, Depends(log_params)]
