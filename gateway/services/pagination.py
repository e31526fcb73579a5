"""Exact pagination over Loki log results, and the one answer shape of DESIGN.md.

A page ends at some boundary timestamp, and more entries may share it. The opaque cursor keeps
that timestamp and short digests of the entries already returned *at* it; the next request starts
at the boundary (inclusive) and skips exactly those, asking Loki for that many more, so walking the
pages returns every entry once — even when more entries share one timestamp than fit a page. The
cursor also keeps the far end of the original window (relative times like `2h` move between
requests) and a digest of the query, tenant and direction, so it cannot be replayed elsewhere."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ApiError
from gateway.services.logql import NS_PER_SECOND, format_second
from gateway.services.loki import Entry
from gateway.services.redact import redact, redact_many

CURSOR_VERSION = 1
ENTRY_DIGEST_BYTES = 5  # collisions among entries sharing one timestamp: ~n^2 / 2^41
QUERY_DIGEST_CHARS = 16
BAD_CURSOR_HINT = "pass next_cursor unchanged, with the same query and direction that produced it"


def entry_digest(labels: Mapping[str, str], line: str) -> bytes:
    material = "\x00".join(f"{k}={v}" for k, v in sorted(labels.items())) + "\x01" + line
    return hashlib.blake2b(material.encode(), digest_size=ENTRY_DIGEST_BYTES).digest()


def query_digest(query: str, direction: str, tenant: str | None) -> str:
    material = json.dumps([query, direction, tenant or ""])
    return hashlib.sha256(material.encode()).hexdigest()[:QUERY_DIGEST_CHARS]


@dataclass(frozen=True)
class Cursor:
    query_digest: str
    boundary_ns: int  # timestamp of the last entry returned
    far_ns: int  # the other end of the original window: its end (forward) or start (backward)
    seen: frozenset[bytes] = field(default_factory=frozenset)  # digests returned at boundary_ns

    def encode(self) -> str:
        body = {
            "v": CURSOR_VERSION,
            "q": self.query_digest,
            "b": str(self.boundary_ns),
            "f": str(self.far_ns),
            "s": base64.b64encode(b"".join(sorted(self.seen))).decode(),
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, expected_query_digest: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            body = json.loads(raw)
            seen_raw = base64.b64decode(body["s"], validate=True)
            cursor = cls(
                query_digest=str(body["q"]),
                boundary_ns=int(body["b"]),
                far_ns=int(body["f"]),
                seen=frozenset(
                    seen_raw[i : i + ENTRY_DIGEST_BYTES] for i in range(0, len(seen_raw), ENTRY_DIGEST_BYTES)
                ),
            )
            if body["v"] != CURSOR_VERSION or len(seen_raw) % ENTRY_DIGEST_BYTES:
                raise ValueError("unsupported cursor")
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_cursor", "the cursor is malformed", BAD_CURSOR_HINT) from exc
        if cursor.query_digest != expected_query_digest:
            raise ApiError(400, "invalid_cursor", "the cursor belongs to a different query", BAD_CURSOR_HINT)
        return cursor


@dataclass(frozen=True)
class PageRequest:
    """What to ask Loki for one page."""

    start_ns: int
    end_ns: int
    loki_limit: int
    cursor: Cursor | None


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
) -> Page:
    """`entries` (merged and ordered in `direction`) minus those already returned, cut to `limit`."""
    cursor = request.cursor
    fresh: list[Entry] = []
    for entry in entries:
        if (
            cursor is not None
            and entry[0] == cursor.boundary_ns
            and entry_digest(entry[1], entry[2]) in cursor.seen
        ):
            continue
        fresh.append(entry)
        if len(fresh) > limit:
            break
    truncated = len(fresh) > limit
    page = fresh[:limit]
    if not truncated or not page:
        return Page(page, truncated, None)
    boundary = page[-1][0]
    seen = {entry_digest(labels, line) for ts, labels, line, _ in page if ts == boundary}
    if cursor is not None and cursor.boundary_ns == boundary:
        seen |= cursor.seen
    far = request.end_ns if direction == "forward" else request.start_ns
    next_cursor = Cursor(digest, boundary, far, frozenset(seen)).encode()
    return Page(page, True, next_cursor)


def loki_stats(data: Mapping[str, Any], returned: int) -> dict[str, Any]:
    """The compact stats agents need, from Loki's `data.stats.summary` when present."""
    summary = (data.get("stats") or {}).get("summary") or {}
    stats: dict[str, Any] = {"entries": returned}
    for ours, theirs in (
        ("bytes_processed", "totalBytesProcessed"),
        ("lines_processed", "totalLinesProcessed"),
        ("exec_time_seconds", "execTime"),
    ):
        if theirs in summary:
            stats[ours] = summary[theirs]
    return stats


def render_streams(entries: Sequence[Entry], *, redact_lines: bool) -> list[dict[str, Any]]:
    """Entries grouped by stream (labels once), in the order streams first appear; lines and
    metadata values redacted when asked."""
    lines = [entry[2] for entry in entries]
    if redact_lines:
        lines = redact_many(lines)
    streams: dict[int, dict[str, Any]] = {}  # entries of one Loki stream share its labels dict
    seconds_text: dict[int, str] = {}
    for (ts, labels, _, meta), text in zip(entries, lines, strict=True):
        seconds, fraction = divmod(ts, NS_PER_SECOND)
        prefix = seconds_text.get(seconds)
        if prefix is None:
            prefix = seconds_text[seconds] = format_second(seconds)
        stamp = f"{prefix}.{fraction:09d}Z"
        stream = streams.get(id(labels))
        if stream is None:
            stream = streams[id(labels)] = {"labels": dict(labels), "entries": []}
        if meta:
            if redact_lines:
                meta = {k: redact(v) for k, v in meta.items()}
            stream["entries"].append([stamp, text, meta])
        else:
            stream["entries"].append([stamp, text])
    return list(streams.values())
