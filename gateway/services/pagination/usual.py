"""The fast path of `shape_page`: a page straight from Loki's answer when it has Loki's usual form,
without per-entry tuples, merging or re-sorting (see `shape_usual_page`)."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from itertools import chain, islice
from typing import Any

from gateway.services.boundary import Boundary, label_key
from gateway.services.loki import entry_metadata
from gateway.services.pagination.page import PageRequest
from gateway.services.pagination.render import MetadataRedactor, ShapedPage
from gateway.services.redact import redact_fields, redact_many
from gateway.services.times import format_second

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


def shape_usual_page(
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
        runs = _runs(data)
        if not runs:
            return ShapedPage([], False, None, 0)
        width = _usual_width(runs, forward)
        if width is None or not _skip_already_returned(runs, request.boundary, width):
            return None
        last = _cut(runs, limit, forward)
        if last is None:
            return None
        page_runs = [run for run in runs if run.count]
        page_runs.sort(
            key=lambda run: (
                run.stamps[run.start],
                label_key(run.labels),
                run.values[run.start][1],
                run.first_index + run.start,
            ),
            reverse=not forward,
        )
        next_cursor = _next_cursor(page_runs, request, last, digest, direction) if last else None
        streams = _render_runs(page_runs, redact_lines)
    except _UNUSUAL_ANSWER:
        return None
    return ShapedPage(streams, bool(last), next_cursor, sum(run.count for run in page_runs))


def _runs(data: Mapping[str, Any]) -> list[_Run]:
    """The streams of the answer that hold values."""
    runs: list[_Run] = []
    first_index = 0
    for stream in data.get("result") or []:
        values = stream.get("values") or []
        if values:
            runs.append(_Run(stream.get("stream") or {}, values, first_index))
        first_index += len(values)
    return runs


def _usual_width(runs: list[_Run], forward: bool) -> int | None:
    """The width of every timestamp when all are decimal texts of one width and each stream is
    strictly ordered in the direction; None otherwise."""
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
    return width


def _cut(runs: list[_Run], limit: int, forward: bool) -> str | None:
    """Each run's `count` on the page. Returns the page's last timestamp when more entries follow
    it, "" when all fit, None when the cut falls between entries of one timestamp."""
    for run in runs:
        run.count = len(run.values) - run.start
    if sum(run.count for run in runs) <= limit:
        return ""
    fresh = sorted(
        chain.from_iterable(islice(run.stamps, run.start, None) for run in runs), reverse=not forward
    )
    last = fresh[limit - 1]
    if fresh[limit] == last:  # the cut falls between entries of one timestamp
        return None
    for run in runs:
        run.count = _count_through(run.stamps, run.start, last, forward)
    return last


def _skip_already_returned(runs: list[_Run], boundary: Boundary[bytes], width: int) -> bool:
    """Skip the entries returned at the boundary already. A stream holds at most one entry at
    the boundary's timestamp (it is strictly ordered), its first when the answer keeps to the
    window; False (take the general path) when one does not."""
    stamp = _padded(boundary.ts_ns, width)
    if stamp is None:
        return True
    for run in runs:
        if stamp in run.stamps:
            at = run.stamps.index(stamp)
            if boundary.holds(run.labels, run.values[at][1]):
                if at != 0:
                    return False
                run.start = 1
    return True


def _next_cursor(page_runs: list[_Run], request: PageRequest, last: str, digest: str, direction: str) -> str:
    at_last = []
    for run in page_runs:
        end = run.start + run.count - 1  # a stream holds at most one entry at `last`: its last one
        if run.stamps[end] == last:
            at_last.append((run.labels, run.values[end][1]))
    return request.next_cursor(request.boundary.after(int(last), at_last), digest, direction)


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
