"""A bounded live follow of a log query: poll Loki forward from a position, hand out each batch of
new entries with an exact cursor, stop at a time or line limit and end with the resumable cursor.

Polling (not Loki's WebSocket tail) keeps it stateless between requests and on the same code and
cursor as paging: the cursor of a forward `query_range` page resumes a follow and vice versa.
It follows entry timestamps: an entry arriving later with a timestamp before the follow's position
is not shown (ask query_range for that window)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.config import GatewaySettings
from gateway.security import Principal
from gateway.services.errors import QueryError, RateLimited
from gateway.services.logql import ScannedQuery
from gateway.services.loki import LokiClient
from gateway.services.pagination import Cursor, ShapedPage, plan_page, query_digest, shape_page
from gateway.services.query_checks import prepare_for
from gateway.services.times import NS_PER_HOUR, parse_time_ns

DIRECTION = "forward"
BATCH_LINES = 100  # most entries asked for per poll


@dataclass(frozen=True)
class TailBatch:
    streams: list[dict[str, Any]]
    returned: int
    next_cursor: str


@dataclass(frozen=True)
class TailEnd:
    next_cursor: str
    reason: Literal["max_seconds", "max_lines"]
    lines: int


class TailSlots:
    """At most `per_key` follows at once per key (per replica: a follow holds one connection)."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}

    def acquire(self, key_id: str) -> None:
        if self._open.get(key_id, 0) >= self.per_key:
            raise RateLimited(
                "too_many_tails",
                f"this key already follows {self.per_key} queries",
                "end one of them (or wait for its max_seconds) before starting another",
                retry_after_seconds=5,
            )
        self._open[key_id] = self._open.get(key_id, 0) + 1

    def release(self, key_id: str) -> None:
        left = self._open.get(key_id, 1) - 1
        if left:
            self._open[key_id] = left
        else:
            self._open.pop(key_id, None)


async def follow(
    loki: LokiClient,
    scanned: ScannedQuery,
    *,
    tenant: str | None,
    digest: str,
    start: Cursor,
    max_seconds: float,
    max_lines: int,
    poll_seconds: float,
    max_entries: int,
    redact_lines: bool,
) -> AsyncIterator[TailBatch | TailEnd]:
    """Batches of entries after `start` (forward), then one TailEnd with the cursor to resume."""
    poller = _Poller(loki, scanned, tenant, digest, max_entries, redact_lines)
    deadline = time.monotonic() + max_seconds
    cursor, sent = start, 0
    while True:
        cursor = replace(cursor, far_ns=max(time.time_ns(), cursor.boundary_ns + 1))
        limit = min(BATCH_LINES, max_lines - sent)
        page = await poller.poll(cursor, limit)
        if page.returned and page.next_cursor is not None:
            cursor = Cursor.decode(page.next_cursor, digest)
            sent += page.returned
            yield TailBatch(page.streams, page.returned, page.next_cursor)
            if sent >= max_lines:
                yield TailEnd(cursor.encode(), "max_lines", sent)
                return
            if page.returned == limit:
                continue  # probably more at once
        if time.monotonic() >= deadline:
            yield TailEnd(cursor.encode(), "max_seconds", sent)
            return
        await asyncio.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class _Poller:
    """One poll of a follow: what Loki holds from the cursor up to its far end (now)."""

    loki: LokiClient
    scanned: ScannedQuery
    tenant: str | None
    digest: str
    max_entries: int
    redact_lines: bool

    async def poll(self, cursor: Cursor, limit: int) -> ShapedPage:
        """Up to `limit` entries after `cursor`, shaped as though more may follow."""
        plan = plan_page(
            start_ns=cursor.boundary_ns, end_ns=cursor.far_ns, limit=limit, direction=DIRECTION, cursor=cursor
        )
        data = await self.loki.query_range(
            self.scanned.text,
            start_ns=plan.start_ns,
            end_ns=plan.end_ns,
            limit=min(plan.loki_limit, self.max_entries),
            direction=DIRECTION,
            tenant=self.tenant,
        )
        return shape_page(data, request=plan, limit=limit, direction=DIRECTION, digest=self.digest,
                          redact_lines=self.redact_lines, assume_more=True)


def tail_start(
    principal: Principal, settings: GatewaySettings, query: str, since: str | None, cursor_text: str | None
) -> tuple[ScannedQuery, str, Cursor]:
    """The policy-scoped query, its cursor digest and where the follow starts: after `cursor`
    (from a follow's end or a forward query_range page), at `since`, or now."""
    scanned = prepare_for(principal, query, settings)
    if not scanned.is_log_query:
        raise QueryError(
            "invalid_query",
            "a live follow needs a log query, not a metric query",
            'e.g. {source="pod"} |= "error"',
        )
    digest = query_digest(scanned.text, DIRECTION, principal.tenant)
    now_ns = time.time_ns()
    if cursor_text is not None:
        if since is not None:
            raise QueryError("invalid_time", "give since or cursor, not both", "a cursor knows where it was")
        start = Cursor.decode(cursor_text, digest)
    else:
        start_ns = parse_time_ns(since, now_ns) if since else now_ns
        start = Cursor(digest, start_ns, now_ns)
    if not 0 <= now_ns - start.boundary_ns <= settings.query_max_range_hours * NS_PER_HOUR:
        raise QueryError(
            "invalid_time",
            f"a follow starts at most {settings.query_max_range_hours:g} h back and not in the future",
            "use query_range for older lines",
        )
    return scanned, digest, start
