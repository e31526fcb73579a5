"""Answers that fit an agent's context window: a byte budget per log answer and clipped long lines.

A page ends at whichever comes first, the request's `limit` or its byte budget; a page cut by the
budget is `truncated` with an exact `next_cursor` (the page is cut again by `shape_page` at the
count that fits, so the cursor is the one a smaller `limit` would have given). Lines longer than
the line budget are clipped with a marker saying how many bytes were cut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.services.errors import QueryError
from gateway.services.logql import quote

CLIP_MARKER = "…[clipped {cut} of {total} bytes]"
MAX_FIT_ROUNDS = 8  # re-cuts when the estimate was a little optimistic; each removes entries
LINE_SHARE_OF_BUDGET = 4  # a clipped line takes at most a quarter of the budget: one entry always fits


@dataclass(frozen=True)
class Budget:
    """The byte budget of one answer and the longest line it shows unclipped."""

    max_bytes: int
    max_line_bytes: int

    @property
    def line_bytes(self) -> int:
        return max(1, min(self.max_line_bytes, self.max_bytes // LINE_SHARE_OF_BUDGET))


def within_maximum(name: str, requested: int | None, default: int, maximum: int) -> int:
    """A page bound the request chose (`limit`, `max_bytes`), else its default; 400 over the maximum."""
    chosen = default if requested is None else requested
    if chosen > maximum:
        raise QueryError(
            f"{name}_too_large",
            f"{name} {chosen} exceeds the maximum of {maximum}",
            f"use {name} <= {maximum} and follow next_cursor for more",
        )
    return chosen


def choose_budget(requested: int | None, default: int, maximum: int, max_line_bytes: int) -> Budget:
    """The request's budget, else the default one. Lines are clipped at a quarter of the budget;
    under the default budget also at `max_line_bytes`, which a request that sets its own budget
    (a script that wants whole long lines) is free of."""
    chosen = within_maximum("max_bytes", requested, default, maximum)
    return Budget(chosen, max_line_bytes if requested is None else chosen)


def clip_line(text: str, max_bytes: int) -> tuple[str, int]:
    """`text` cut to at most `max_bytes` UTF-8 bytes (never inside a character) plus the marker,
    and how many bytes were cut (0: unchanged)."""
    if len(text) * 4 <= max_bytes:  # no character takes more than 4 bytes
        return text, 0
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text, 0
    kept = raw[:max_bytes].decode("utf-8", "ignore")
    cut = len(raw) - len(kept.encode("utf-8", "surrogatepass"))
    return kept + CLIP_MARKER.format(cut=cut, total=len(raw)), cut


def clip_streams(streams: list[dict[str, Any]], max_line_bytes: int) -> tuple[int, int]:
    """Clip every entry's line in place; (lines clipped, bytes cut)."""
    clipped = cut_total = 0
    for stream in streams:
        for entry in stream["entries"]:
            text, cut = clip_line(entry[1], max_line_bytes)
            if cut:
                entry[1] = text
                clipped += 1
                cut_total += cut
    return clipped, cut_total


def answer_size(answer: Any) -> int:
    return len(orjson.dumps(answer))


def entries_that_fit(streams: list[dict[str, Any]], room: int, forward: bool) -> int:
    """How many of the page's entries, taken in page order, fit in `room` bytes with their
    streams' labels (each stream's labels counted where its first entry is taken)."""
    costs: list[tuple[str, int, int]] = []  # (ts text, stream index, bytes)
    for index, stream in enumerate(streams):
        for entry in stream["entries"]:
            costs.append((entry[0], index, len(orjson.dumps(entry)) + 1))
    costs.sort(key=lambda cost: cost[0], reverse=not forward)  # RFC 3339 ns texts: one width
    used, taken, opened = 0, 0, set()
    for _, index, size in costs:
        if index not in opened:
            size += len(orjson.dumps(streams[index]["labels"])) + len('{"labels":,"entries":[]},')
        if used + size > room:
            break
        used += size
        opened.add(index)
        taken += 1
    return taken


@dataclass(frozen=True)
class FittedPage:
    answer: dict[str, Any]
    cut_by_budget: bool


def compact_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer with `streams` as `text`: each stream's labels once, as a LogQL selector, then
    one `ts line` row per entry (newlines in lines escaped; metadata, if any, after a tab)."""
    rows: list[str] = []
    for stream in answer.get("streams") or []:
        labels = stream["labels"].items()
        rows.append("{" + ", ".join(f"{name}={quote(value)}" for name, value in labels) + "}")
        for entry in stream["entries"]:
            row = f"{entry[0]} {entry[1]}".replace("\r", "\\r").replace("\n", "\\n")
            if len(entry) > 2:
                row += "\t" + orjson.dumps(entry[2]).decode()
            rows.append(row)
    shown = {key: value for key, value in answer.items() if key != "streams"}
    return {"format": "compact", "text": "\n".join(rows), **shown}


def as_is(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


def fit_page(
    shape: Callable[[int], dict[str, Any]],
    limit: int,
    budget: Budget,
    forward: bool,
    render: Callable[[dict[str, Any]], dict[str, Any]] = as_is,
) -> FittedPage:
    """The answer of `shape(limit)` (an answer dict with `streams` and `stats`), or, when it is
    over the budget, of `shape(k)` for the largest k found that fits (at least one entry).
    Lines are clipped in every case; `stats` gains answer_bytes, budget_bytes, lines_clipped and
    bytes_clipped. `render` (e.g. `compact_answer`) makes what is sent, and the budget applies to
    that; the estimates of what fits are made on the JSON form, which is the larger."""

    def sent_size(answer: dict[str, Any]) -> int:
        return answer_size(render(answer))

    answer = _clipped(shape(limit), budget)
    size = sent_size(answer)
    cut = False
    count = _entry_count(answer)
    rounds = 0
    while size > budget.max_bytes and count > 1 and rounds < MAX_FIT_ROUNDS:
        overhead = answer_size(answer) - _entries_bytes(answer)
        fitting = entries_that_fit(answer["streams"], budget.max_bytes - overhead, forward)
        smaller = max(1, min(fitting, count - 1))
        answer = _clipped(shape(smaller), budget)
        size = sent_size(answer)
        count = _entry_count(answer)
        cut = True
        rounds += 1
    while size > budget.max_bytes and count > 1:  # the estimates kept missing: halve
        answer = _clipped(shape(max(1, count // 2)), budget)
        size = sent_size(answer)
        count = _entry_count(answer)
        cut = True
    sent = render(answer)
    sent["stats"]["answer_bytes"] = exact_size(sent)
    return FittedPage(sent, cut)


def exact_size(answer: dict[str, Any]) -> int:
    """The answer's size with its own `answer_bytes` in it (the field counts its own digits)."""
    size = answer_size(answer)
    for _ in range(3):
        answer["stats"]["answer_bytes"] = size
        measured = answer_size(answer)
        if measured == size:
            break
        size = measured
    return size


def _clipped(answer: dict[str, Any], budget: Budget) -> dict[str, Any]:
    clipped, cut = clip_streams(answer.get("streams") or [], budget.line_bytes)
    answer["stats"]["lines_clipped"] = clipped
    answer["stats"]["bytes_clipped"] = cut
    answer["stats"]["budget_bytes"] = budget.max_bytes
    answer["stats"]["answer_bytes"] = budget.max_bytes  # as wide as the real figure can be
    return answer


def _entry_count(answer: dict[str, Any]) -> int:
    return sum(len(stream["entries"]) for stream in answer.get("streams") or [])


def _entries_bytes(answer: dict[str, Any]) -> int:
    return sum(answer_size(stream) + 1 for stream in answer.get("streams") or [])
