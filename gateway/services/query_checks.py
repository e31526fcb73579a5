"""Checks a log query passes before it runs, for every way in (REST, MCP, Loki's API, summaries):
the key's label policy, the query's own faults, its limit, step and byte budget, the bytes its
streams hold and the window of a cursor given back."""

from __future__ import annotations

import time

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.budget import Budget, choose_budget, within_maximum
from gateway.services.errors import CursorError, NotPermitted, ServiceError, TooLarge
from gateway.services.logql import (
    TRANSFORM_SCOPE,
    Matcher,
    ScannedQuery,
    parse_policy,
    prepare_query,
    selector_text,
)
from gateway.services.loki import LokiClient
from gateway.services.pagination import BAD_CURSOR_HINT, Cursor
from gateway.services.times import NS_PER_HOUR, parse_duration_ns, resolve_range

DEFAULT_RANGE_HOURS = 1.0
MAX_PARAM_CHARS = 1024
MAX_CURSOR_CHARS = 16_384
MAX_QUERY_CHARS = 8192  # a LogQL query, on every route and tool


def query_window(
    settings: GatewaySettings, since: str | None, until: str | None, hours: float | None
) -> tuple[int, int]:
    """The window of a query from since/until/hours, the last hour by default, within
    QUERY_MAX_RANGE_HOURS."""
    return resolve_range(
        since=since,
        until=until,
        hours=hours,
        now_ns=time.time_ns(),
        default_hours=DEFAULT_RANGE_HOURS,
        max_hours=settings.query_max_range_hours,
    )


def key_policy(principal: Principal) -> tuple[Matcher, ...]:
    """The key's policy matchers (none for a full-access key); NotPermitted when it does not parse."""
    if not principal.label_policy:
        return ()
    try:
        return parse_policy(principal.label_policy)
    except (ValueError, ServiceError) as exc:
        raise NotPermitted(
            "invalid_label_policy",
            "this key's label policy is not a valid selector",
            "ask an administrator to fix the key's label_policy",
        ) from exc


def prepare_for(principal: Principal, query: str, settings: GatewaySettings) -> ScannedQuery:
    """The query scanned with the key's policy injected: NotPermitted when the key's own label
    policy does not parse; QueryError for the query's own faults."""
    key_policy(principal)
    return prepare_query(
        query,
        principal.label_policy,
        max_range_hours=settings.query_max_range_hours,
        allow_transforms=principal.allows(TRANSFORM_SCOPE) or not settings.redact_log_lines,
    )


def policy_selector(principal: Principal, settings: GatewaySettings, query: str | None) -> str | None:
    """The selector to scope label listings: the client's (with the policy injected) or the policy."""
    if query:
        return prepare_for(principal, query, settings).text
    return principal.label_policy


def check_limit(limit: int | None, default: int, maximum: int) -> int:
    return within_maximum("limit", limit, default, maximum)


def check_step(step: str | None) -> str | None:
    if step is not None:
        parse_duration_ns(step)  # validates; Loki takes the same notation
    return step


def budget_for(settings: GatewaySettings, max_bytes: int | None, *, always: bool = False) -> Budget | None:
    """The byte budget of a log answer: the request's `max_bytes`, else ANSWER_MAX_BYTES for MCP
    (`always`) and for REST unless ANSWER_BUDGET_ON_REST is off; None: the page ends at `limit` only."""
    if max_bytes is None and not (always or settings.answer_budget_on_rest):
        return None
    return choose_budget(
        max_bytes, settings.answer_max_bytes, settings.answer_max_bytes_limit, settings.answer_max_line_bytes
    )


def check_cursor_window(cursor: Cursor, direction: str, max_range_hours: float) -> None:
    """A cursor is not signed: its window must obey the same range limit as a fresh query."""
    span = cursor.far_ns - cursor.boundary_ns
    if direction != "forward":
        span = -span
    if not 0 <= span <= max_range_hours * NS_PER_HOUR:
        raise CursorError("invalid_cursor", "the cursor's time window is invalid", BAD_CURSOR_HINT)


async def index_totals(
    loki: LokiClient, scanned: ScannedQuery, start_ns: int, end_ns: int, tenant: str | None
) -> dict[str, int]:
    """Loki's index statistics summed over the query's stream selectors."""
    totals = {"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}
    for sel in scanned.selectors:
        stats = await loki.index_stats(scanned.text[sel.start : sel.end], start_ns, end_ns, tenant)
        totals = {k: totals[k] + stats[k] for k in totals}
    return totals


async def check_bytes(
    loki: LokiClient, scanned: ScannedQuery, start_ns: int, end_ns: int, tenant: str | None, limit: int | None
) -> None:
    """With QUERY_MAX_BYTES set, refuse queries whose streams hold more than that in the window."""
    if not limit:
        return
    total = (await index_totals(loki, scanned, start_ns, end_ns, tenant))["bytes"]
    if total > limit:
        raise TooLarge(
            "query_too_large",
            f"the selected streams hold {total} bytes in this range, over the limit of {limit}",
            f"narrow the time range or the selector ({selector_text(scanned)}) with more specific labels",
        )
