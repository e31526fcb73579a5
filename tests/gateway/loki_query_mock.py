"""A stand-in for Loki's query API at the HTTP layer (an httpx handler for respx or
httpx.MockTransport). It honours what pagination depends on exactly as Loki documents it:
`start` inclusive, `end` exclusive (nanosecond Unix epoch), `limit` across all streams, and
`direction` (forward: oldest first, backward: newest first). Entries sharing a timestamp come
back in a shuffled order on every request, because Loki promises no order among them.

Answers are in the formats recorded from the real Loki 3.7.6 (tests/fixtures/loki/query/, kept
honest by tests/loki/test_recorded_query_answers.py): with `X-Loki-Response-Encoding-Flags:
categorize-labels` every entry is `[ts, line, {"structuredMetadata": {...}}]` (`{}` without
metadata) and `data.encodingFlags` says so; without it metadata is merged into the stream's
labels, one stream per label-and-metadata set, as Loki does. Empty label lists are a bare
{"status": "success"}; refusals are Loki's text/plain 400s, including a limit over
`max_entries_limit_per_query` (10000 in ops-stack/loki/loki.yaml).

Supported LogQL: one stream selector with =, !=, =~, !~ matchers, followed by `|= "text"` and
`!= "text"` line filters. Anything else answers 400 like Loki's parse errors, so a test that
sends a query we did not mean to send fails loudly."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import respx

from tests.gateway.loki_answers import load_answer, loki_message, recorded_response, recorded_vector

CATEGORIZE_HEADER = "X-Loki-Response-Encoding-Flags"
PROJECT_MAX_ENTRIES_LIMIT = 10000  # ops-stack/loki/loki.yaml max_entries_limit_per_query

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*(,|$)')
_LINE_FILTER = re.compile(r'\s*(\|=|!=)\s*("(?:[^"\\]|\\.)*")')


@dataclass(frozen=True)
class MockEntry:
    labels: tuple[tuple[str, str], ...]
    ts_ns: int
    line: str
    metadata: tuple[tuple[str, str], ...] = ()


_TOTAL_COUNT = re.compile(r"sum\(count_over_time\((.*) \[(\d+)s\]\)\)", re.DOTALL)


def parse_simple_query(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(matchers, line filters) of `{a="b", ...} |= "x" != "y"`; ValueError otherwise."""
    query = query.strip()
    if not query.startswith("{") or "}" not in query:
        raise ValueError(f"parse error: not a log selector: {query!r}")
    depth_end = _selector_end(query)
    inner, rest = query[1 : depth_end - 1], query[depth_end:]
    matchers: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(inner.rstrip()):
        match = _MATCHER.match(inner, pos)
        if not match:
            raise ValueError(f"parse error at {inner[pos:]!r}")
        matchers.append((match.group(1), match.group(2), json.loads(match.group(3))))
        pos = match.end()
    filters: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rest.strip()) and rest[pos:].strip():
        match = _LINE_FILTER.match(rest, pos)
        if not match:
            raise ValueError(f"parse error: unsupported pipeline {rest[pos:]!r}")
        filters.append((match.group(1), json.loads(match.group(2))))
        pos = match.end()
    return matchers, filters


def _selector_end(query: str) -> int:
    in_string, escaped = False, False
    for i, char in enumerate(query):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "}":
            return i + 1
    raise ValueError("parse error: unclosed selector")


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


@dataclass
class LokiQueryMock:
    entries: list[MockEntry] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    seed: int = 7
    fail_with: Callable[[httpx.Request], httpx.Response] | None = None
    max_entries_limit: int = PROJECT_MAX_ENTRIES_LIMIT

    def add(
        self, labels: dict[str, str], ts_ns: int, line: str, metadata: dict[str, str] | None = None
    ) -> None:
        self.entries.append(
            MockEntry(tuple(sorted(labels.items())), ts_ns, line, tuple((metadata or {}).items()))
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            return self.fail_with(request)
        path = request.url.path
        params = request.url.params
        try:
            if path == "/loki/api/v1/query_range":
                return self._query_range(params, categorize=CATEGORIZE_HEADER in request.headers)
            if path == "/loki/api/v1/query":
                total = _TOTAL_COUNT.fullmatch(params["query"])
                if total:  # sum(count_over_time(<simple query> [Ns])), as Loki answers it
                    end = int(params["time"])
                    chosen = self._selected(total[1], end - int(total[2]) * 1_000_000_000, end + 1)
                    value = [end / 1_000_000_000, str(len(chosen))]
                    return recorded_vector([{"metric": {}, "value": value}] if chosen else [])
                parse_simple_query(params["query"])  # a metric query is a parse error here
                return recorded_response("error_instant_log_query")
            if path == "/loki/api/v1/index/stats":
                return self._index_stats(params)
            if path == "/loki/api/v1/labels":
                return self._labels(params, None)
            if path.startswith("/loki/api/v1/label/") and path.endswith("/values"):
                return self._labels(params, path.split("/")[5])
            if path == "/loki/api/v1/patterns":
                chosen = self._selected(params["query"], int(params["start"]), int(params["end"]))
                samples = [[e.ts_ns // 1_000_000_000, 1] for e in chosen]
                patterns = [{"pattern": "<_>", "level": "unknown", "samples": samples}] if chosen else []
                return recorded_response("patterns", {"status": "success", "data": patterns})
            if path == "/ready":
                return httpx.Response(200, text="ready")
        except (ValueError, re.error) as exc:  # re.error: a regex Loki (RE2) refuses as well
            return httpx.Response(400, text=str(exc), headers={"content-type": "text/plain; charset=utf-8"})
        return httpx.Response(404, text="404 page not found")

    def _selected(self, query: str, start: int, end: int) -> list[MockEntry]:
        matchers, filters = parse_simple_query(query)
        narrowing = [
            (op == "=" and v != "") or (op == "=~" and not re.fullmatch(v, "")) for _, op, v in matchers
        ]
        if not any(narrowing):
            raise ValueError(loki_message("error_empty_matcher"))
        chosen = []
        for entry in self.entries:
            if not start <= entry.ts_ns < end or not _matches(dict(entry.labels), matchers):
                continue
            if all((needle in entry.line) == (op == "|=") for op, needle in filters):
                chosen.append(entry)
        return chosen

    def _query_range(self, params: httpx.QueryParams, *, categorize: bool) -> httpx.Response:
        start, end = int(params["start"]), int(params["end"])
        limit = int(params.get("limit", "100"))
        if limit > self.max_entries_limit:
            text = re.sub(
                r"\(\d+ > \d+\)", f"({limit} > {self.max_entries_limit})", loki_message("error_max_entries")
            )
            return recorded_response("error_max_entries", text)
        direction = params.get("direction", "backward")
        if direction not in ("forward", "backward"):
            raise ValueError(f"invalid direction {direction!r}")
        chosen = self._selected(params["query"], start, end)
        shuffle = random.Random(self.seed + len(self.requests))
        keyed = [(e.ts_ns, shuffle.random(), e) for e in chosen]
        keyed.sort(key=lambda k: k[:2], reverse=direction == "backward")
        page = [k[2] for k in keyed[:limit]]
        streams: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
        for entry in page:
            value: list[Any] = [str(entry.ts_ns), entry.line]
            labels = entry.labels
            if categorize:
                value.append({"structuredMetadata": dict(entry.metadata)} if entry.metadata else {})
            else:  # Loki merges structured metadata into the labels
                labels = tuple(sorted({**dict(entry.metadata), **dict(entry.labels)}.items()))
            streams.setdefault(labels, []).append(value)
        body = load_answer("query_range_streams" if categorize else "query_range_streams_uncategorized").body
        data = body["data"]
        data["result"] = [{"stream": dict(labels), "values": values} for labels, values in streams.items()]
        summary = data["stats"]["summary"]
        summary["totalBytesProcessed"] = sum(len(e.line) for e in chosen)
        summary["totalLinesProcessed"] = len(chosen)
        summary["totalEntriesReturned"] = len(page)
        summary["execTime"] = 0.001
        return recorded_response("query_range_streams", body)

    def _index_stats(self, params: httpx.QueryParams) -> httpx.Response:
        chosen = self._selected(params["query"], int(params["start"]), int(params["end"]))
        streams = {e.labels for e in chosen}
        body = load_answer("index_stats").body  # its keys, in Loki's order
        size = sum(len(e.line) for e in chosen)
        body.update(streams=len(streams), chunks=len(streams), entries=len(chosen), bytes=size)
        return recorded_response("index_stats", body)

    def _labels(self, params: httpx.QueryParams, name: str | None) -> httpx.Response:
        query = params.get("query")
        matchers = parse_simple_query(query)[0] if query else []
        found: set[str] = set()
        for entry in self.entries:
            labels = dict(entry.labels)
            if _matches(labels, matchers):
                found |= set(labels) if name is None else ({labels[name]} if name in labels else set())
        if not found:  # Loki leaves `data` out of an empty list
            return recorded_response("labels_empty")
        return recorded_response("labels", {"status": "success", "data": sorted(found)})


@contextmanager
def answering_at(url: str, mock: LokiQueryMock) -> Iterator[LokiQueryMock]:
    """`mock` answers every request to `url` (respx) while the block runs."""
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=url).mock(side_effect=mock)
        yield mock
