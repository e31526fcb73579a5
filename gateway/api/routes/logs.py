"""Ready-made log endpoints per source (GCS, Firestore, pods) and the production overview. Filters
become a LogQL query built by gateway.services.logql (every value escaped), the key's label
policy is injected, and answers have the one shape of DESIGN.md with exact pagination."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.api.deps import CacheDep, LokiDep, Principal, SettingsDep, require_scope
from gateway.config import MIN_ANSWER_BYTES, GatewaySettings
from gateway.errors import ApiError, Failure
from gateway.services.aggregate import (
    AGGREGATE_HINT,
    DEFAULT_GROUPS,
    MAX_GROUPS,
    aggregate,
    parse_grouping,
)
from gateway.services.budget import Budget, as_is, choose_budget, compact_answer, fit_page, within_maximum
from gateway.services.cache import Cache, cached
from gateway.services.empty import explain_empty
from gateway.services.grafana import explore_url
from gateway.services.logql import (
    TRANSFORM_SCOPE,
    ScannedQuery,
    build_log_query,
    parse_levels,
    parse_policy,
    prepare_query,
    selector_text,
)
from gateway.services.loki import (
    LokiClient,
    TooManyAtOneTimestamp,
    count_entries,
    max_entries_per_query,
    sorted_entries,
)
from gateway.services.offload import shape_loki_answer
from gateway.services.pagination import (
    BAD_CURSOR_HINT,
    ENTRY_DIGEST_BYTES,
    Cursor,
    PageRequest,
    ShapedPage,
    cut_page,
    loki_stats,
    plan_page,
    query_digest,
    shape_page,
)
from gateway.services.redact import redact, redact_fields
from gateway.services.times import (
    NS_PER_HOUR,
    echo_window,
    parse_duration_ns,
    resolve_range,
    samples_in_rfc3339,
)


def _declared_query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in getattr(dependant, "query_params", ())}
    for sub in getattr(dependant, "dependencies", ()):
        names |= _declared_query_names(sub)
    return names


async def reject_unknown_params(
    request: Request, _: Annotated[Principal, Depends(require_scope("logs:read"))]
) -> None:
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


router = APIRouter(tags=["logs"], dependencies=[Depends(reject_unknown_params)])


class FastJSONResponse(JSONResponse):
    """JSON via orjson: a 1,000-line page encodes several times faster than with json.dumps."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


LogReader = Annotated[Principal, Depends(require_scope("logs:read"))]
Direction = Literal["backward", "forward"]
DEFAULT_RANGE_HOURS = 1.0
SOURCES = {"gcs": "gcs", "firestore": "firestore", "pod": "pod", "pods": "pod", "gateway": "gateway"}
PRODUCTION_SOURCES = ("gcs", "firestore", "pod")
MAX_PARAM_CHARS = 1024
MAX_CURSOR_CHARS = 16_384
AnswerFormat = Literal["json", "compact"]
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


@dataclass(frozen=True)
class LogParams:
    """Query parameters every log endpoint shares."""

    since: str | None
    until: str | None
    hours: float | None
    level: list[str]
    q: str | None
    limit: int | None
    direction: Direction
    cursor: str | None
    max_bytes: int | None = None
    format: AnswerFormat = "json"
    aggregate: str | None = None
    groups: int = DEFAULT_GROUPS


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
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
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


def check_limit(limit: int | None, default: int, maximum: int) -> int:
    return within_maximum("limit", limit, default, maximum)


def budget_for(settings: GatewaySettings, max_bytes: int | None, *, always: bool = False) -> Budget | None:
    """The byte budget of a log answer: the request's `max_bytes`, else ANSWER_MAX_BYTES for MCP
    (`always`) and for REST unless ANSWER_BUDGET_ON_REST is off; None: the page ends at `limit` only."""
    if max_bytes is None and not (always or settings.answer_budget_on_rest):
        return None
    return choose_budget(
        max_bytes, settings.answer_max_bytes, settings.answer_max_bytes_limit, settings.answer_max_line_bytes
    )


def prepare_for(principal: Principal, query: str, settings: GatewaySettings) -> ScannedQuery:
    """403 when the key's own label policy does not parse; 400 for the query's own faults."""
    if principal.label_policy:
        try:
            parse_policy(principal.label_policy)
        except (ValueError, *Failure) as exc:
            raise ApiError(
                403,
                "invalid_label_policy",
                "this key's label policy is not a valid selector",
                "ask an administrator to fix the key's label_policy",
            ) from exc
    return prepare_query(
        query,
        principal.label_policy,
        max_range_hours=settings.query_max_range_hours,
        allow_transforms=principal.allows(TRANSFORM_SCOPE) or not settings.redact_log_lines,
    )


def cache_key(request: Request, principal: Principal) -> str:
    material = json.dumps(
        [
            request.url.path,
            sorted(request.query_params.multi_items()),
            principal.tenant,
            principal.label_policy,
        ]
    )
    return "logs:" + hashlib.sha256(material.encode()).hexdigest()


async def check_bytes(
    loki: LokiClient, scanned: ScannedQuery, start_ns: int, end_ns: int, tenant: str | None, limit: int | None
) -> None:
    """With QUERY_MAX_BYTES set, refuse queries whose streams hold more than that in the window."""
    if not limit:
        return
    total = 0
    for sel in scanned.selectors:
        stats = await loki.index_stats(scanned.text[sel.start : sel.end], start_ns, end_ns, tenant)
        total += stats["bytes"]
    if total > limit:
        raise ApiError(
            413,
            "query_too_large",
            f"the selected streams hold {total} bytes in this range, over the limit of {limit}",
            f"narrow the time range or the selector ({selector_text(scanned)}) with more specific labels",
        )


def check_step(step: str | None) -> str | None:
    if step is not None:
        parse_duration_ns(step)  # validates; Loki takes the same notation
    return step


def metric_answer(data: dict[str, Any], redact_labels: bool, echo: dict[str, str]) -> dict[str, Any]:
    """Loki's answer to a metric query with our stats, sample times in RFC 3339 and the window
    (`echo`) it covers. Its series labels can hold line content (`sum by (db_password) (... | json
    ...)`): redacted like stream labels."""
    result = data.get("result") or []
    if redact_labels:
        result = [
            {**series, "metric": redact_fields(series["metric"])}
            if isinstance(series, dict) and isinstance(series.get("metric"), dict) else series
            for series in result
        ]
    return {
        "result_type": data.get("resultType"),
        "result": samples_in_rfc3339(result),
        "window": echo,
        "stats": loki_stats(data, len(result)),
    }


async def run_log_query(
    *,
    loki: LokiClient,
    settings: GatewaySettings,
    principal: Principal,
    scanned: ScannedQuery,
    start_ns: int,
    end_ns: int,
    limit: int,
    direction: str,
    cursor_text: str | None,
    step: str | None = None,
    budget: Budget | None = None,
    compact: bool = False,
) -> dict[str, Any]:
    """One page of a query, in the DESIGN.md answer shape (or a metric result for metric queries),
    within `budget` when one is given (see gateway.services.budget); a first page without entries
    says why (`empty`, see gateway.services.empty)."""
    step = check_step(step)
    digest = query_digest(scanned.text, direction, principal.tenant)
    cursor = Cursor.decode(cursor_text, digest) if cursor_text else None
    if cursor is not None:
        # the cursor is not signed: its window must obey the same range limit as a fresh query
        span = cursor.far_ns - cursor.boundary_ns
        if direction != "forward":
            span = -span
        if not 0 <= span <= settings.query_max_range_hours * NS_PER_HOUR:
            raise ApiError(400, "invalid_cursor", "the cursor's time window is invalid", BAD_CURSOR_HINT)
    plan = plan_page(start_ns=start_ns, end_ns=end_ns, limit=limit, direction=direction, cursor=cursor)
    # every page: a cursor is not signed, so a made-up one must not skip the check
    await check_bytes(loki, scanned, plan.start_ns, plan.end_ns, principal.tenant, settings.query_max_bytes)
    asked = min(plan.loki_limit, max_entries_per_query(settings))  # what Loki accepts
    data = await loki.query_range(
        scanned.text,
        start_ns=plan.start_ns,
        end_ns=plan.end_ns,
        limit=asked,
        direction=direction,
        step=step,
        tenant=principal.tenant,
    )
    link = None
    if settings.grafana_url:  # the original window, not this page's: the view of the whole query
        uid = settings.grafana_loki_datasource_uid
        link = explore_url(settings.grafana_url, uid, scanned.text, start_ns, end_ns)
    if data.get("resultType") != "streams":
        echo = echo_window(start_ns, end_ns)
        metric = await shape_loki_answer(partial(metric_answer, data, settings.redact_log_lines, echo), data)
        return {**metric, "grafana_url": link} if link else metric

    def shaped(count: int) -> ShapedPage:
        return shape_page(
            data,
            request=plan,
            limit=count,
            direction=direction,
            digest=digest,
            redact_lines=settings.redact_log_lines,
        )

    full = await shape_loki_answer(partial(shaped, limit), data)  # off the event loop when big
    if asked < plan.loki_limit and not full.truncated and count_entries(data) >= asked:
        full = await _page_cut_by_cap(
            loki, scanned, data, plan, limit, direction, digest, principal, settings
        )

    why_empty: dict[str, Any] | None = None
    if cursor is None and not full.returned:
        with contextlib.suppress(ApiError):  # a courtesy: the (empty) answer stands without it
            why_empty = await explain_empty(
                loki, scanned, label_policy=principal.label_policy,
                start_ns=plan.start_ns, end_ns=plan.end_ns, tenant=principal.tenant,
            )

    def shape(count: int) -> dict[str, Any]:
        """The answer for a page of `count` entries (fewer than `limit`: cut by the budget)."""
        page = full if count >= limit else shaped(count)
        if page.next_cursor is not None and len(page.next_cursor) > MAX_CURSOR_CHARS:
            # it holds a digest per entry returned at its timestamp: too many to pass back in a URL
            raise TooManyAtOneTimestamp(MAX_CURSOR_CHARS * 3 // 4 // ENTRY_DIGEST_BYTES)
        answer = {
            "streams": page.streams,
            "truncated": page.truncated,
            "next_cursor": page.next_cursor,
            "window": echo_window(start_ns, end_ns),
            "stats": loki_stats(data, page.returned),
        }
        if link:
            answer["grafana_url"] = link
        if why_empty:
            answer["empty"] = why_empty
        return answer

    render = compact_answer if compact else as_is
    if budget is None:
        return render(shape(limit))
    chosen = budget
    return await shape_loki_answer(
        lambda: fit_page(shape, limit, chosen, direction == "forward", render).answer, data
    )


async def _page_cut_by_cap(
    loki: LokiClient,
    scanned: ScannedQuery,
    data: dict[str, Any],
    plan: PageRequest,
    limit: int,
    direction: str,
    digest: str,
    principal: Principal,
    settings: GatewaySettings,
) -> ShapedPage:
    """Loki sent all `cap` entries it was asked for, fewer than the page needed to know whether
    there is more. Cut the page there, then ask whether anything follows its last entry (a
    request of limit 0 from its cursor, when that fits under the cap); if it cannot tell, the
    page says truncated and the next one finds out."""
    page = shape_page(
        data,
        request=plan,
        limit=limit,
        direction=direction,
        digest=digest,
        redact_lines=settings.redact_log_lines,
        assume_more=True,
    )
    if page.next_cursor is None:  # nothing fresh: more than `cap` entries share the boundary
        raise TooManyAtOneTimestamp(max_entries_per_query(settings))
    probe = plan_page(
        start_ns=plan.start_ns,
        end_ns=plan.end_ns,
        limit=0,
        direction=direction,
        cursor=Cursor.decode(page.next_cursor, digest),
    )
    if probe.loki_limit > max_entries_per_query(settings):
        return page
    after = await loki.query_range(
        scanned.text,
        start_ns=probe.start_ns,
        end_ns=probe.end_ns,
        limit=probe.loki_limit,
        direction=direction,
        tenant=principal.tenant,
    )
    entries = sorted_entries(after, forward=direction == "forward")
    if cut_page(entries, request=probe, limit=0, direction=direction, digest=digest).truncated:
        return page
    return ShapedPage(page.streams, False, None, page.returned)


@dataclass(frozen=True)
class QueryContext:
    """What every cached query endpoint works with."""

    request: Request
    principal: Principal
    settings: GatewaySettings
    loki: LokiClient
    cache: Cache

    async def answer(self, compute: Callable[[], Awaitable[dict[str, Any]]]) -> FastJSONResponse:
        """The cached answer to this request, computed on a miss."""
        key = cache_key(self.request, self.principal)
        return FastJSONResponse(await cached(self.cache, key, self.settings.cache_ttl_seconds, compute))

    async def answer_page(
        self,
        scanned: ScannedQuery,
        *,
        start_ns: int,
        end_ns: int,
        limit: int,
        direction: str,
        cursor_text: str | None,
        step: str | None = None,
        max_bytes: int | None = None,
        answer_format: AnswerFormat = "json",
    ) -> FastJSONResponse:
        """The cached answer of `run_log_query`, within the request's byte budget."""
        budget = budget_for(self.settings, max_bytes)

        async def compute() -> dict[str, Any]:
            return await run_log_query(
                loki=self.loki,
                settings=self.settings,
                principal=self.principal,
                scanned=scanned,
                start_ns=start_ns,
                end_ns=end_ns,
                limit=limit,
                direction=direction,
                cursor_text=cursor_text,
                step=step,
                budget=budget,
                compact=answer_format == "compact",
            )

        return await self.answer(compute)


async def query_context(
    request: Request, principal: LogReader, settings: SettingsDep, loki: LokiDep, cache: CacheDep
) -> QueryContext:
    return QueryContext(request, principal, settings, loki, cache)


QueryContextDep = Annotated[QueryContext, Depends(query_context)]


@dataclass(frozen=True)
class FilteredQuery:
    scanned: ScannedQuery
    start_ns: int
    end_ns: int
    limit: int


def filtered_query(
    principal: Principal,
    settings: GatewaySettings,
    params: LogParams,
    labels: dict[str, str | list[str]],
    metadata: dict[str, str],
) -> FilteredQuery:
    """The policy-scoped query, window and limit of a per-source request (REST and MCP alike)."""
    levels = parse_levels(params.level)
    limit = check_limit(params.limit, settings.query_default_limit, settings.logs_max_limit)
    start_ns, end_ns = resolve_range(
        since=params.since,
        until=params.until,
        hours=params.hours,
        now_ns=time.time_ns(),
        default_hours=DEFAULT_RANGE_HOURS,
        max_hours=settings.query_max_range_hours,
    )
    query = build_log_query(
        {k: v for k, v in labels.items() if v},
        levels=levels,
        contains=params.q,
        metadata={k: v for k, v in metadata.items() if v},
    )
    return FilteredQuery(prepare_for(principal, query, settings), start_ns, end_ns, limit)


async def answer_filters(
    ctx: QueryContext,
    params: LogParams,
    labels: dict[str, str | list[str]],
    metadata: dict[str, str],
) -> FastJSONResponse:
    found = filtered_query(ctx.principal, ctx.settings, params, labels, metadata)
    if params.aggregate is not None:
        return await answer_aggregate(ctx, params, found.scanned, found.start_ns, found.end_ns)
    return await ctx.answer_page(
        found.scanned,
        start_ns=found.start_ns,
        end_ns=found.end_ns,
        limit=found.limit,
        direction=params.direction,
        cursor_text=params.cursor,
        max_bytes=params.max_bytes,
        answer_format=params.format,
    )


async def answer_aggregate(
    ctx: QueryContext, params: LogParams, scanned: ScannedQuery, start_ns: int, end_ns: int
) -> FastJSONResponse:
    """The `aggregate=` answer: counts per group over the whole window (no paging)."""
    grouping = parse_grouping(params.aggregate or "")
    if params.cursor is not None:
        raise ApiError(400, "invalid_request", "aggregate answers are not paged", "drop `cursor`")
    settings, principal = ctx.settings, ctx.principal
    await check_bytes(ctx.loki, scanned, start_ns, end_ns, principal.tenant, settings.query_max_bytes)
    redactor = redact if settings.redact_log_lines else str

    async def compute() -> dict[str, Any]:
        return await aggregate(
            ctx.loki,
            query=scanned.text,
            grouping=grouping,
            start_ns=start_ns,
            end_ns=end_ns,
            tenant=principal.tenant,
            groups=params.groups,
            max_lines=settings.summary_max_lines,
            redact=redactor,
        )

    return await ctx.answer(compute)


# per source: its `source` label value, its label filters and its structured-metadata filters
# (the parameters of the routes below; `service` is the label service_name)
SOURCE_FILTERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "gcs": ("gcs", ("bucket", "prefix", "service"), ("object",)),
    "firestore": ("firestore", ("collection", "service"), ("doc_id",)),
    "pods": ("pod", ("namespace", "pod", "container", "service"), ("node",)),
}


Filter = Annotated[str | None, Query(max_length=MAX_PARAM_CHARS)]


@router.get("/logs/gcs", summary="GCS object logs")
async def gcs_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    bucket: Filter = None,
    prefix: Filter = None,
    service: Filter = None,
    object: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "gcs",
        "bucket": bucket or "",
        "prefix": prefix or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"object": object or ""})


@router.get("/logs/firestore", summary="Firestore document logs")
async def firestore_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    collection: Filter = None,
    service: Filter = None,
    doc_id: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "firestore",
        "collection": collection or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"doc_id": doc_id or ""})


@router.get("/logs/pods", summary="Kubernetes pod logs")
async def pod_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    namespace: Filter = None,
    pod: Filter = None,
    container: Filter = None,
    service: Filter = None,
    node: Filter = None,
) -> FastJSONResponse:
    labels: dict[str, str | list[str]] = {
        "source": "pod",
        "namespace": namespace or "",
        "pod": pod or "",
        "container": container or "",
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {"node": node or ""})


@router.get("/api/monitoring/logs/production", summary="Production logs across sources")
async def production_logs(
    ctx: QueryContextDep,
    params: LogParamsDep,
    source: Annotated[list[str], Query(description="gcs, firestore, pod; default all three")] = [],  # noqa: B006
    service: Filter = None,
) -> FastJSONResponse:
    chosen: list[str] = []
    for item in source:
        for part in filter(None, (p.strip().lower() for p in item.split(","))):
            if part not in SOURCES:
                raise ApiError(
                    400, "invalid_source", f"unknown source {part!r}", "use gcs, firestore, pod or gateway"
                )
            if SOURCES[part] not in chosen:
                chosen.append(SOURCES[part])
    labels: dict[str, str | list[str]] = {
        "source": chosen or list(PRODUCTION_SOURCES),
        "service_name": service or "",
    }
    return await answer_filters(ctx, params, labels, {})
