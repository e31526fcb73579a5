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
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from gateway.services.errors import CursorError
from gateway.services.loki import Entry, entry_metadata, sorted_entries
from gateway.services.redact import redact_fields, redact_many
from gateway.services.times import NS_PER_SECOND, format_second

CURSOR_VERSION = 2
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
        """`<header>.<seen>`, each base64url once: the digests are most of a cursor when many
        entries share its boundary, and base64 inside base64 made 2,000 of them over 16 KiB."""
        header = {"v": CURSOR_VERSION, "q": self.query_digest, "b": str(self.boundary_ns)}
        raw = json.dumps({**header, "f": str(self.far_ns)}, separators=(",", ":")).encode()
        return f"{_b64(raw)}.{_b64(b''.join(sorted(self.seen)))}"

    @classmethod
    def decode(cls, text: str, expected_query_digest: str) -> Cursor:
        try:
            head, dot, tail = text.partition(".")
            if not dot:
                raise ValueError("no digests part")
            body = json.loads(_unb64(head))
            seen_raw = _unb64(tail)
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
        except (
            ValueError, KeyError, TypeError, OverflowError, RecursionError, binascii.Error, UnicodeDecodeError
        ) as exc:  # RecursionError: json.loads of deeply nested brackets ("[[[[...")
            raise CursorError("invalid_cursor", "the cursor is malformed", BAD_CURSOR_HINT) from exc
        if cursor.query_digest != expected_query_digest:
            raise CursorError("invalid_cursor", "the cursor belongs to a different query", BAD_CURSOR_HINT)
        return cursor


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


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
    assume_more: bool = False,
) -> Page:
    """`entries` (merged and ordered in `direction`) minus those already returned, cut to `limit`.
    `assume_more`: Loki may hold more than it sent (it was asked for fewer than the page needs),
    so a page that is not full still gets a cursor past its last entry."""
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
    truncated = len(fresh) > limit or assume_more
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


class MetadataRedactor(dict[tuple[str, str], str]):
    """`redact_fields` for the metadata of one page, once per distinct name and value: entries of
    one object repeat most of theirs (`object`, `generation`), and a 1,000-entry page took 39 ms."""

    def __call__(self, meta: Mapping[str, str]) -> dict[str, str]:
        return {name: self[name, text] for name, text in meta.items()}

    def __missing__(self, field_: tuple[str, str]) -> str:
        name, text = field_
        shown = self[field_] = redact_fields({name: text})[name]
        return shown


def render_streams(entries: Sequence[Entry], *, redact_lines: bool) -> list[dict[str, Any]]:
    """Entries grouped by stream (labels once), in the order streams first appear; lines and
    metadata values redacted when asked."""
    lines = [entry[2] for entry in entries]
    if redact_lines:
        lines = redact_many(lines)
    streams: dict[int, dict[str, Any]] = {}  # entries of one Loki stream share its labels dict
    seconds_text: dict[int, str] = {}
    redact_meta = MetadataRedactor()
    for (ts, labels, _, meta), text in zip(entries, lines, strict=True):
        seconds, fraction = divmod(ts, NS_PER_SECOND)
        prefix = seconds_text.get(seconds)
        if prefix is None:
            prefix = seconds_text[seconds] = format_second(seconds)
        stamp = f"{prefix}.{fraction:09d}Z"
        stream = streams.get(id(labels))
        if stream is None:
            shown = redact_fields(labels) if redact_lines else dict(labels)
            stream = streams[id(labels)] = {"labels": shown, "entries": []}
        if meta:
            if redact_lines:
                meta = redact_meta(meta)
            stream["entries"].append([stamp, text, meta])
        else:
            stream["entries"].append([stamp, text])
    return list(streams.values())


@dataclass(frozen=True)
class ShapedPage:
    """One page in the DESIGN.md answer shape, and how many entries it holds."""

    streams: list[dict[str, Any]]
    truncated: bool
    next_cursor: str | None
    returned: int


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
    Loki's usual form (see `_shape_usual_page`). Anything else takes that general path."""
    if not assume_more:
        usual = _shape_usual_page(data, request, limit, direction, digest, redact_lines)
        if usual is not None:
            return usual
    entries = sorted_entries(data, forward=direction == "forward")
    page = cut_page(
        entries, request=request, limit=limit, direction=direction, digest=digest, assume_more=assume_more
    )
    streams = render_streams(page.entries, redact_lines=redact_lines)
    return ShapedPage(streams, page.truncated, page.next_cursor, len(page.entries))


# Malformed answers raise one of these somewhere in the fast path; the general path then raises
# exactly what it always did for them.
_UNUSUAL_ANSWER = (TypeError, ValueError, IndexError, KeyError, AttributeError, OverflowError, OSError)
MIN_TS_DIGITS = 10  # at least one digit of whole seconds in front of the nine of the fraction


class _Run:
    """One Loki stream of the answer: its values, their timestamps as Loki's decimal strings,
    the index of its first value among all values (the general path's last tie-breaker) and
    the slice [start, start + count) of values that goes on the page."""

    __slots__ = ("count", "first_index", "labels", "stamps", "start", "values")

    def __init__(self, labels: Mapping[str, str], values: list[Any], first_index: int) -> None:
        self.labels = labels
        self.values = values
        self.stamps: list[str] = list(map(operator.itemgetter(0), values))
        self.first_index = first_index
        self.start = 0
        self.count = len(values)


class _TenSecondTexts(dict[str, str]):
    """'YYYY-MM-DDTHH:MM:S' for a timestamp's decimal digits before its last ten (its tens of
    seconds), computed once per ten seconds: ten-second spans never cross a minute, so the last
    digit of the second only has to be appended. An empty key is the first ten seconds."""

    def __missing__(self, tens: str) -> str:
        text = self[tens] = format_second(int(tens or 0) * 10)[:-1]
        return text


def _label_key(labels: Mapping[str, str]) -> str:
    return "\x00".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _count_through(stamps: list[str], start: int, last: str, forward: bool) -> int:
    """How many of stamps[start:] come no later than `last` in the direction (stamps strictly
    monotonic in that direction, all of one width, so text order is numeric order)."""
    lo, hi = start, len(stamps)
    while lo < hi:
        mid = (lo + hi) // 2
        if (stamps[mid] <= last) if forward else (stamps[mid] >= last):
            lo = mid + 1
        else:
            hi = mid
    return lo - start


def _padded(value: int, width: int) -> str | None:
    """`value` as a timestamp text of `width` digits, or None when no such text equals it."""
    text = str(value)
    return text.zfill(width) if value >= 0 and len(text) <= width else None


def _shape_usual_page(
    data: Mapping[str, Any],
    request: PageRequest,
    limit: int,
    direction: str,
    digest: str,
    redact_lines: bool,
) -> ShapedPage | None:
    """The page when Loki's answer has its usual form, None otherwise. Usual means: every
    timestamp is a decimal string of one common width (so comparing texts compares times, and
    the fraction is the last nine digits), each stream's values are strictly ordered in the
    query direction (as Loki sends them), and no two entries share the timestamp at which the
    page is cut. Then the general path's merge keeps each stream's order, a page is a prefix of
    every stream, streams appear in the order of their first entries, and only the timestamps
    of the entries need any per-entry work."""
    if data.get("resultType") != "streams" or limit < 1:
        return None
    forward = direction == "forward"
    try:
        runs: list[_Run] = []
        first_index = 0
        for stream in data.get("result") or []:
            values = stream.get("values") or []
            if values:
                runs.append(_Run(stream.get("stream") or {}, values, first_index))
            first_index += len(values)
        if not runs:
            return ShapedPage([], False, None, 0)
        all_stamps = list(chain.from_iterable(run.stamps for run in runs))
        width = len(all_stamps[0])
        if (
            width < MIN_TS_DIGITS
            or set(map(len, all_stamps)) != {width}
            or not "".join(all_stamps).encode("ascii").isdigit()
        ):
            return None
        in_order = operator.lt if forward else operator.gt
        for run in runs:
            if not all(map(in_order, run.stamps, islice(run.stamps, 1, None))):
                return None
        cursor = request.cursor
        if cursor is not None and not _skip_already_returned(runs, cursor, width):
            return None
        for run in runs:
            run.count = len(run.values) - run.start
        total = sum(run.count for run in runs)
        truncated = total > limit
        last = ""
        if truncated:
            fresh = sorted(
                chain.from_iterable(islice(run.stamps, run.start, None) for run in runs),
                reverse=not forward,
            )
            last = fresh[limit - 1]
            if fresh[limit] == last:  # the cut falls between entries of one timestamp
                return None
            for run in runs:
                run.count = _count_through(run.stamps, run.start, last, forward)
        page_runs = [run for run in runs if run.count]
        page_runs.sort(
            key=lambda run: (
                run.stamps[run.start],
                _label_key(run.labels),
                run.values[run.start][1],
                run.first_index + run.start,
            ),
            reverse=not forward,
        )
        next_cursor = None
        if truncated:
            next_cursor = _next_cursor(page_runs, request, last, digest, forward)
        streams = _render_runs(page_runs, redact_lines)
    except _UNUSUAL_ANSWER:
        return None
    return ShapedPage(streams, truncated, next_cursor, sum(run.count for run in page_runs))


def _skip_already_returned(runs: list[_Run], cursor: Cursor, width: int) -> bool:
    """Skip the entries the cursor says were returned at its boundary. They lead their streams
    when the answer keeps to the window; False (take the general path) when one does not."""
    boundary = _padded(cursor.boundary_ns, width)
    if boundary is None:
        return True
    for run in runs:
        if boundary in run.stamps:  # at most once: the stream is strictly ordered
            at = run.stamps.index(boundary)
            if entry_digest(run.labels, run.values[at][1]) in cursor.seen:
                if at != 0:
                    return False
                run.start = 1
    return True


def _next_cursor(page_runs: list[_Run], request: PageRequest, last: str, digest: str, forward: bool) -> str:
    boundary = int(last)
    seen: set[bytes] = set()
    for run in page_runs:
        end = run.start + run.count - 1  # a stream holds at most one entry at `last`: its last one
        if run.stamps[end] == last:
            seen.add(entry_digest(run.labels, run.values[end][1]))
    cursor = request.cursor
    if cursor is not None and cursor.boundary_ns == boundary:
        seen |= cursor.seen
    far = request.end_ns if forward else request.start_ns
    return Cursor(digest, boundary, far, frozenset(seen)).encode()


def _render_runs(page_runs: list[_Run], redact_lines: bool) -> list[dict[str, Any]]:
    """The streams of the answer: labels once, then [ts, line] or [ts, line, metadata]."""
    slices = [run.values[run.start : run.start + run.count] for run in page_runs]
    lines = list(chain.from_iterable(map(operator.itemgetter(1), values) for values in slices))
    if redact_lines:
        lines = redact_many(lines)
    tens = _TenSecondTexts()
    redact_meta = MetadataRedactor()
    streams: list[dict[str, Any]] = []
    offset = 0
    for run, values in zip(page_runs, slices, strict=True):
        stamps = islice(run.stamps, run.start, run.start + run.count)
        texts = islice(lines, offset, offset + run.count)
        offset += run.count
        if set(map(len, values)) == {2}:
            entries: list[list[Any]] = [
                [f"{tens[stamp[:-10]]}{stamp[-10]}.{stamp[-9:]}Z", text]
                for stamp, text in zip(stamps, texts, strict=True)
            ]
        else:
            entries = []
            for value, stamp, text in zip(values, stamps, texts, strict=True):
                entry: list[Any] = [f"{tens[stamp[:-10]]}{stamp[-10]}.{stamp[-9:]}Z", text]
                meta = entry_metadata(value)
                if meta:
                    entry.append(redact_meta(meta) if redact_lines else meta)
                entries.append(entry)
        labels = redact_fields(run.labels) if redact_lines else dict(run.labels)
        streams.append({"labels": labels, "entries": entries})
    return streams
