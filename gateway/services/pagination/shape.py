"""One page of Loki's `streams` answer in the answer shape: the fast path when the answer has
Loki's usual form, the general path (merge, cut, render) otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.services.loki import sorted_entries
from gateway.services.pagination.page import PageRequest, cut_page
from gateway.services.pagination.render import ShapedPage, render_streams
from gateway.services.pagination.usual import shape_usual_page


def shape_page(
    data: Mapping[str, Any],
    *,
    request: PageRequest,
    limit: int,
    direction: str,
    digest: str,
    redact_lines: bool,
    assume_more: bool = False,
) -> ShapedPage:
    """Loki's `streams` answer as one page: exactly `sorted_entries` -> `cut_page` ->
    `render_streams`, but without per-entry tuples, merging or re-sorting when the answer has
    Loki's usual form (see `shape_usual_page`). Anything else takes that general path."""
    if not assume_more:
        usual = shape_usual_page(data, request, limit, direction, digest, redact_lines)
        if usual is not None:
            return usual
    entries = sorted_entries(data, forward=direction == "forward")
    page = cut_page(
        entries, request=request, limit=limit, direction=direction, digest=digest, assume_more=assume_more
    )
    streams = render_streams(page.entries, redact_lines=redact_lines)
    return ShapedPage(streams, page.truncated, page.next_cursor, len(page.entries))
