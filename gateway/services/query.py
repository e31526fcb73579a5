"""Running a log query: one page of it in the DESIGN.md answer shape (or a metric result), exact
across pages, within a byte budget, cached per caller; and the aggregate answer (counts per group
over the whole window). REST routes and MCP tools both answer through `LogQueries`."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.aggregate import aggregate, parse_grouping
from gateway.services.budget import Budget, as_is, compact_answer, fit_page
from gateway.services.cache import Cache, cached
from gateway.services.empty import explain_empty
from gateway.services.errors import QueryError, ServiceError
from gateway.services.grafana import explore_url
from gateway.services.logql import ScannedQuery
from gateway.services.loki import (
    LokiClient,
    TooManyAtOneTimestamp,
    count_entries,
    max_entries_per_query,
    sorted_entries,
)
from gateway.services.offload import shape_loki_answer
from gateway.services.pagination import (
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
from gateway.services.query_checks import (
    MAX_CURSOR_CHARS,
    budget_for,
    check_bytes,
    check_cursor_window,
    check_step,
)
from gateway.services.redact import redact, redact_fields
from gateway.services.times import echo_window, samples_in_rfc3339


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
        check_cursor_window(cursor, direction, settings.query_max_range_hours)
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

    def shaped(count: int, assume_more: bool = False) -> ShapedPage:
        return shape_page(
            data,
            request=plan,
            limit=count,
            direction=direction,
            digest=digest,
            redact_lines=settings.redact_log_lines,
            assume_more=assume_more,
        )

    full = await shape_loki_answer(partial(shaped, limit), data)  # off the event loop when big
    if asked < plan.loki_limit and not full.truncated and count_entries(data) >= asked:
        full = await _page_cut_by_cap(
            loki, scanned, shaped(limit, assume_more=True), plan, direction, digest, principal, settings
        )

    why_empty: dict[str, Any] | None = None
    if cursor is None and not full.returned:
        with contextlib.suppress(ServiceError):  # a courtesy: the (empty) answer stands without it
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
            "window": echo_window(plan.start_ns, plan.end_ns),  # this page's: a cursor narrows it
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
    page: ShapedPage,
    plan: PageRequest,
    direction: str,
    digest: str,
    principal: Principal,
    settings: GatewaySettings,
) -> ShapedPage:
    """Loki sent all `cap` entries it was asked for, fewer than the page needed to know whether
    there is more. Cut the page there (`page`, shaped assuming more follows), then ask whether
    anything follows its last entry (a request of limit 0 from its cursor, when that fits under
    the cap); if it cannot tell, the page says truncated and the next one finds out."""
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
class PageAsk:
    """One page of a prepared query: its window, size, order, where it resumes and how it is sent."""

    scanned: ScannedQuery
    start_ns: int
    end_ns: int
    limit: int
    direction: str
    cursor_text: str | None
    step: str | None = None
    max_bytes: int | None = None
    compact: bool = False


@dataclass(frozen=True)
class LogQueries:
    """The log queries of one caller, answered and cached under a key the way in chooses (the
    request for REST, the tool and its arguments for MCP)."""

    loki: LokiClient
    settings: GatewaySettings
    principal: Principal
    cache: Cache

    async def cached(self, key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """`compute()`, cached under `key` for CACHE_TTL_SECONDS."""
        return await cached(self.cache, key, self.settings.cache_ttl_seconds, compute)

    async def page(self, key: str, ask: PageAsk, *, always_budget: bool = False) -> dict[str, Any]:
        """The cached answer of `run_log_query` within the byte budget (`always_budget`: even
        without `max_bytes` and with ANSWER_BUDGET_ON_REST off, as MCP answers are)."""
        budget = budget_for(self.settings, ask.max_bytes, always=always_budget)

        async def compute() -> dict[str, Any]:
            return await run_log_query(
                loki=self.loki,
                settings=self.settings,
                principal=self.principal,
                scanned=ask.scanned,
                start_ns=ask.start_ns,
                end_ns=ask.end_ns,
                limit=ask.limit,
                direction=ask.direction,
                cursor_text=ask.cursor_text,
                step=ask.step,
                budget=budget,
                compact=ask.compact,
            )

        return await self.cached(key, compute)  # type: ignore[no-any-return]

    async def aggregate(
        self, key: str, scanned: ScannedQuery, start_ns: int, end_ns: int, *,
        grouping_text: str, groups: int, cursor_text: str | None,
    ) -> dict[str, Any]:
        """The `aggregate=` answer: counts per group over the whole window (no paging)."""
        grouping = parse_grouping(grouping_text)
        if cursor_text is not None:
            raise QueryError("invalid_request", "aggregate answers are not paged", "drop `cursor`")
        settings, principal = self.settings, self.principal
        await check_bytes(self.loki, scanned, start_ns, end_ns, principal.tenant, settings.query_max_bytes)
        redactor = redact if settings.redact_log_lines else str

        async def compute() -> dict[str, Any]:
            return await aggregate(
                self.loki,
                query=scanned.text,
                grouping=grouping,
                start_ns=start_ns,
                end_ns=end_ns,
                tenant=principal.tenant,
                groups=groups,
                max_lines=settings.summary_max_lines,
                redact=redactor,
            )

        return await self.cached(key, compute)  # type: ignore[no-any-return]
