"""Exact pagination over Loki log results, and the one answer shape of DESIGN.md: `cursor` (the
opaque cursor), `page` (planning a page and cutting it from merged entries), `render` (the answer
shape), `shape` (one page straight from Loki's answer, with the fast path in `usual`). Where a
page ends and the next begins: gateway.services.boundary."""

from __future__ import annotations

from gateway.services.boundary import ENTRY_DIGEST_BYTES, entry_digest
from gateway.services.pagination.cursor import (
    BAD_CURSOR_HINT,
    CURSOR_VERSION,
    QUERY_DIGEST_CHARS,
    Cursor,
    query_digest,
)
from gateway.services.pagination.page import Page, PageRequest, cut_page, loki_stats, plan_page
from gateway.services.pagination.render import MetadataRedactor, ShapedPage, render_streams
from gateway.services.pagination.shape import shape_page

__all__ = [
    "BAD_CURSOR_HINT",
    "CURSOR_VERSION",
    "ENTRY_DIGEST_BYTES",
    "QUERY_DIGEST_CHARS",
    "Cursor",
    "MetadataRedactor",
    "Page",
    "PageRequest",
    "ShapedPage",
    "cut_page",
    "entry_digest",
    "loki_stats",
    "plan_page",
    "query_digest",
    "render_streams",
    "shape_page",
]
