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
    metric_series,
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
    result = metric_series(data)
    if redact_labels:
        result = [{**series, "metric": redact_fields(series["metric"])} if "metric" in series else series
                  for series in result]
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
    run = _QueryRun(loki, settings, principal, scanned, direction, digest)
    cursor = run.resume_from(cursor_text)
    plan = plan_page(start_ns=start_ns, end_ns=end_ns, limit=limit, direction=direction, cursor=cursor)
    data = await run.fetch(plan, step)
    link = _grafana_link(settings, scanned.text, start_ns, end_ns)
    if data.get("resultType") != "streams":
        echo = echo_window(start_ns, end_ns)
        metric = await shape_loki_answer(partial(metric_answer, data, settings.redact_log_lines, echo), data)
        return {**metric, "grafana_url": link} if link else metric
    pages = _StreamPages(data, plan, limit, direction, digest, settings.redact_log_lines)
    full = await run.full_page(pages)
    why_empty = await run.why_empty(plan) if cursor is None and not full.returned else None
    # the window this page read: a cursor narrows the one the request's time words resolve to
    shape = _PageAnswers(pages, full, (plan.start_ns, plan.end_ns), link, why_empty)
    return await _rendered(shape, limit, budget, compact, direction == "forward", data)


def _grafana_link(settings: GatewaySettings, query: str, start_ns: int, end_ns: int) -> str | None:
    """Grafana's Explore view of the whole query (the original window, not one page's)."""
    if not settings.grafana_url:
        return None
    return explore_url(settings.grafana_url, settings.grafana_loki_datasource_uid, query, start_ns, end_ns)


@dataclass(frozen=True)
class _StreamPages:
    """Loki's streams answer for one page request, shaped into a page of any count of entries."""

    data: dict[str, Any]
    plan: PageRequest
    limit: int  # entries in the full page
    direction: str
    digest: str
    redact_lines: bool

    def shaped(self, count: int, assume_more: bool = False) -> ShapedPage:
        return shape_page(
            self.data,
            request=self.plan,
            limit=count,
            direction=self.direction,
            digest=self.digest,
            redact_lines=self.redact_lines,
            assume_more=assume_more,
        )


@dataclass(frozen=True)
class _PageAnswers:
    """The answer for a page of `count` entries (fewer than `limit`: cut by the budget)."""

    pages: _StreamPages
    full: ShapedPage
    window: tuple[int, int]
    link: str | None
    why_empty: dict[str, Any] | None

    def __call__(self, count: int) -> dict[str, Any]:
        page = self.full if count >= self.pages.limit else self.pages.shaped(count)
        if page.next_cursor is not None and len(page.next_cursor) > MAX_CURSOR_CHARS:
            # it holds a digest per entry returned at its timestamp: too many to pass back in a URL
            raise TooManyAtOneTimestamp(MAX_CURSOR_CHARS * 3 // 4 // ENTRY_DIGEST_BYTES)
        answer = {
            "streams": page.streams,
            "truncated": page.truncated,
            "next_cursor": page.next_cursor,
            "window": echo_window(*self.window),
            "stats": loki_stats(self.pages.data, page.returned),
        }
        if self.link:
            answer["grafana_url"] = self.link
        if self.why_empty:
            answer["empty"] = self.why_empty
        return answer


async def _rendered(
    shape: _PageAnswers, limit: int, budget: Budget | None, compact: bool, forward: bool, data: dict[str, Any]
) -> dict[str, Any]:
    """The full page's answer, or the largest page whose answer fits `budget`."""
    render = compact_answer if compact else as_is
    if budget is None:
        return render(shape(limit))
    return await shape_loki_answer(lambda: fit_page(shape, limit, budget, forward, render).answer, data)


@dataclass(frozen=True)
class _QueryRun:
    """What the steps of one page of a log query share: who asks what, in which order."""

    loki: LokiClient
    settings: GatewaySettings
    principal: Principal
    scanned: ScannedQuery
    direction: str
    digest: str

    @property
    def cap(self) -> int:
        """The most entries Loki accepts in one query."""
        return max_entries_per_query(self.settings)

    def resume_from(self, cursor_text: str | None) -> Cursor | None:
        """The cursor the page resumes from, checked against this query and the allowed range."""
        if not cursor_text:
            return None
        cursor = Cursor.decode(cursor_text, self.digest)
        check_cursor_window(cursor, self.direction, self.settings.query_max_range_hours)
        return cursor

    async def fetch(self, plan: PageRequest, step: str | None) -> dict[str, Any]:
        """Loki's answer for `plan`, at most `cap` entries, once the bytes it would read are allowed."""
        tenant, max_bytes = self.principal.tenant, self.settings.query_max_bytes
        # every page: a cursor is not signed, so a made-up one must not skip the check
        await check_bytes(self.loki, self.scanned, plan.start_ns, plan.end_ns, tenant, max_bytes)
        return await self.loki.query_range(
            self.scanned.text,
            start_ns=plan.start_ns,
            end_ns=plan.end_ns,
            limit=min(plan.loki_limit, self.cap),
            direction=self.direction,
            step=step,
            tenant=tenant,
        )

    async def full_page(self, pages: _StreamPages) -> ShapedPage:
        """The page of `limit` entries; cut at the cap when Loki sent all the cap allowed and that
        was fewer than the page needed."""
        # off the event loop when big
        full = await shape_loki_answer(partial(pages.shaped, pages.limit), pages.data)
        capped = self.cap < pages.plan.loki_limit and count_entries(pages.data) >= self.cap
        if capped and not full.truncated:
            return await self.cut_by_cap(pages.shaped(pages.limit, assume_more=True), pages.plan)
        return full

    async def why_empty(self, plan: PageRequest) -> dict[str, Any] | None:
        """Why a first page has no entries (see gateway.services.empty)."""
        with contextlib.suppress(ServiceError):  # a courtesy: the (empty) answer stands without it
            return await explain_empty(
                self.loki, self.scanned, label_policy=self.principal.label_policy,
                start_ns=plan.start_ns, end_ns=plan.end_ns, tenant=self.principal.tenant,
            )
        return None

    async def cut_by_cap(self, page: ShapedPage, plan: PageRequest) -> ShapedPage:
        """Loki sent all `cap` entries it was asked for, fewer than the page needed to know whether
        there is more. Cut the page there (`page`, shaped assuming more follows), then ask whether
        anything follows its last entry (a request of limit 0 from its cursor, when that fits under
        the cap); if it cannot tell, the page says truncated and the next one finds out."""
        if page.next_cursor is None:  # nothing fresh: more than `cap` entries share the boundary
            raise TooManyAtOneTimestamp(self.cap)
        probe = plan_page(
            start_ns=plan.start_ns,
            end_ns=plan.end_ns,
            limit=0,
            direction=self.direction,
            cursor=Cursor.decode(page.next_cursor, self.digest),
        )
        if probe.loki_limit > self.cap:
            return page
        after = await self.loki.query_range(
            self.scanned.text,
            start_ns=probe.start_ns,
            end_ns=probe.end_ns,
            limit=probe.loki_limit,
            direction=self.direction,
            tenant=self.principal.tenant,
        )
        entries = sorted_entries(after, forward=self.direction == "forward")
        if cut_page(entries, request=probe, limit=0, direction=self.direction, digest=self.digest).truncated:
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
