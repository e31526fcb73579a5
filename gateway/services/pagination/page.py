"""Exact pagination over Loki log results: what to ask Loki for one page, and the page cut from
its answer (the general path, for entries already merged and ordered).

A page ends at some boundary timestamp, and more entries may share it. The next request starts
at the boundary (inclusive) and skips exactly the entries already returned at it, asking Loki for
that many more, so walking the pages returns every entry once — even when more entries share one
timestamp than fit a page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from gateway.services.boundary import Boundary, entry_digest, first_boundary
from gateway.services.loki import Entry
from gateway.services.pagination.cursor import Cursor


@dataclass(frozen=True)
class PageRequest:
    """What to ask Loki for one page."""

    start_ns: int
    end_ns: int
    loki_limit: int
    cursor: Cursor | None

    @property
    def boundary(self) -> Boundary[bytes]:
        """Where the pages before this one ended (nothing to skip on the first page)."""
        return first_boundary(entry_digest) if self.cursor is None else self.cursor.boundary

    def next_cursor(self, boundary: Boundary[bytes], digest: str, direction: str) -> str:
        """The cursor of the page after this one, which ended at `boundary`."""
        far = self.end_ns if direction == "forward" else self.start_ns
        return Cursor(digest, boundary.ts_ns, far, boundary.seen).encode()


def plan_page(
    *, start_ns: int, end_ns: int, limit: int, direction: str, cursor: Cursor | None
) -> PageRequest:
    """The window and limit for the next page. limit+1 (plus the entries to skip) tells us
    whether there is more."""
    if cursor is None:
        return PageRequest(start_ns, end_ns, limit + 1, None)
    extra = len(cursor.seen) + 1
    if direction == "forward":
        return PageRequest(cursor.boundary_ns, cursor.far_ns, limit + extra, cursor)
    return PageRequest(cursor.far_ns, cursor.boundary_ns + 1, limit + extra, cursor)


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    truncated: bool
    next_cursor: str | None


def cut_page(
    entries: Sequence[Entry],
    *,
    request: PageRequest,
    limit: int,
    direction: str,
    digest: str,
    assume_more: bool = False,
) -> Page:
    """`entries` (merged and ordered in `direction`) minus those already returned, cut to `limit`.
    `assume_more`: Loki may hold more than it sent (it was asked for fewer than the page needs),
    so a page that is not full still gets a cursor past its last entry."""
    boundary = request.boundary
    fresh = list(islice(boundary.skip_returned(entries), limit + 1))
    truncated = len(fresh) > limit or assume_more
    page = fresh[:limit]
    if not truncated or not page:
        return Page(page, truncated, None)
    last = page[-1][0]
    moved = boundary.after(last, [(labels, line) for ts, labels, line, _ in page if ts == last])
    return Page(page, True, request.next_cursor(moved, digest, direction))


def loki_stats(data: Mapping[str, Any], returned: int) -> dict[str, Any]:
    """The compact stats agents need, from Loki's `data.stats.summary` when present."""
    stats_of_loki = data.get("stats")
    summary = stats_of_loki.get("summary") if isinstance(stats_of_loki, dict) else None
    summary = summary if isinstance(summary, dict) else {}  # no stats: the entry count alone
    stats: dict[str, Any] = {"entries": returned}
    for ours, theirs in (
        ("bytes_processed", "totalBytesProcessed"),
        ("lines_processed", "totalLinesProcessed"),
        ("exec_time_seconds", "execTime"),
    ):
        if theirs in summary:
            stats[ours] = summary[theirs]
    return stats
