"""Counting without LogQL: the lines a log route matches, grouped by template, by a stream label
or by a JSON field, with one sample line per group and an "other" bucket for the rest.

The total (`matched`) comes from Loki's own count over the window, so it is exact even when the
grouping had to stop reading at its line limit; the groups then say they cover `read` lines.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gateway.services.errors import QueryError
from gateway.services.summarize import LineReader
from gateway.services.templates import TemplateMiner, error_codes
from gateway.services.times import format_ns, is_unix_seconds, seconds_z

Kind = Literal["template", "label", "field"]
DEFAULT_GROUPS = 5
MAX_GROUPS = 50
SAMPLE_CHARS = 240
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
AGGREGATE_HINT = "use aggregate=template, aggregate=label:<label name> or aggregate=field:<JSON field>"
_NS = 1_000_000_000


class LineSource(LineReader, Protocol):
    """What aggregation needs from Loki: the summary's lines, and an instant query for the exact
    count (gateway.services.loki.LokiClient implements it)."""

    async def query(
        self,
        query: str,
        *,
        time_ns: int | None = None,
        limit: int | None = None,
        direction: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Grouping:
    kind: Kind
    name: str | None = None  # the label or field name

    @property
    def text(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


def parse_grouping(text: str) -> Grouping:
    kind, _, name = text.strip().partition(":")
    if kind == "template" and not name:
        return Grouping("template")
    if kind in ("label", "field") and _NAME.match(name):
        return Grouping(kind, name)  # type: ignore[arg-type]
    raise QueryError("invalid_aggregate", f"cannot group by {text[:80]!r}", AGGREGATE_HINT)


@dataclass
class Group:
    key: str
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    sample: str = ""

    def add(self, ts_ns: int, level: str, line: str) -> None:
        if self.count == 0:
            self.first_ns = self.last_ns = ts_ns
            self.sample = line
        self.count += 1
        self.first_ns, self.last_ns = min(self.first_ns, ts_ns), max(self.last_ns, ts_ns)
        self.levels[level] = self.levels.get(level, 0) + 1

    def as_dict(self, redact: Callable[[str], str]) -> dict[str, Any]:
        return {
            "key": self.key,
            "count": self.count,
            "codes": list(error_codes(self.sample)),
            "levels": dict(sorted(self.levels.items(), key=lambda item: -item[1])),
            "first_seen": format_ns(self.first_ns),
            "last_seen": format_ns(self.last_ns),
            "sample": redact(self.sample)[:SAMPLE_CHARS],
        }


def _field_value(line: str, name: str) -> str:
    try:
        value = json.loads(line)
    except ValueError:
        return "<not JSON>"
    if not isinstance(value, dict):
        return "<not JSON>"
    found = value.get(name)
    if found is None:
        return "<missing>"
    return found if isinstance(found, str) else json.dumps(found)


async def matched_total(loki: LineSource, query: str, start_ns: int, end_ns: int, tenant: str | None) -> int:
    """Loki's count of the query's lines in [start, end]: exact whatever the read limit."""
    seconds = max(1, math.ceil((end_ns - start_ns) / _NS))
    data = await loki.query(
        f"sum(count_over_time({query} [{seconds}s]))", time_ns=end_ns, limit=1, direction="backward",
        tenant=tenant,
    )
    result = data.get("result") or []
    try:
        return int(float(result[0]["value"][1])) if result else 0
    except (KeyError, IndexError, TypeError, ValueError):
        return 0


async def aggregate(
    loki: LineSource,
    *,
    query: str,
    grouping: Grouping,
    start_ns: int,
    end_ns: int,
    tenant: str | None,
    groups: int,
    max_lines: int,
    redact: Callable[[str], str],
) -> dict[str, Any]:
    """Counts per group (largest first), the top `groups` of them with a sample, the rest as "other"."""
    grouper = _Grouper(grouping, redact, TemplateMiner(redact) if grouping.kind == "template" else None)
    tally = _Tally()
    async for ts_ns, labels, line in loki.iter_lines(
        query, start_ns=start_ns, end_ns=end_ns, tenant=tenant, max_lines=max_lines + 1
    ):
        if tally.read >= max_lines:
            tally.truncated = True
            break
        tally.add(grouper.key_of(labels, line), ts_ns, labels, line)
    ranked = sorted(tally.by_key.values(), key=lambda g: (-g.count, g.first_ns, g.key))
    shown = [grouper.row(group) for group in ranked[:groups]]
    rest = ranked[groups:]
    matched = await matched_total(loki, query, start_ns, end_ns, tenant)
    return {
        "aggregate": grouping.text,
        "groups": shown,
        "other": {"groups": len(rest), "count": sum(g.count for g in rest)},
        "window": {"since": format_ns(start_ns), "until": format_ns(end_ns)},
        "stats": {"matched": max(matched, tally.read), "read": tally.read, "truncated": tally.truncated},
    }


@dataclass(frozen=True)
class _Grouper:
    """Which group a line falls in, and how a group is shown."""

    grouping: Grouping
    redact: Callable[[str], str]
    miner: TemplateMiner | None  # grouping by template

    def key_of(self, labels: dict[str, str], line: str) -> str:
        if self.miner is not None:
            return str(self.miner.cluster_of(line))
        if self.grouping.kind == "label":
            return labels.get(self.grouping.name or "", "<none>")
        return _field_value(line, self.grouping.name or "")

    def row(self, group: Group) -> dict[str, Any]:
        row = group.as_dict(self.redact)
        if self.miner is None:
            row["key"] = self.redact(row["key"])
            return row
        row = {"template": self.miner.template_text(int(group.key)), **row}
        del row["key"]
        return row


@dataclass
class _Tally:
    """The groups of the lines read so far."""

    by_key: dict[str, Group] = field(default_factory=dict)
    read: int = 0
    truncated: bool = False  # stopped at the line limit

    def add(self, key: str, ts_ns: int, labels: dict[str, str], line: str) -> None:
        self.read += 1
        group = self.by_key.get(key)
        if group is None:
            group = self.by_key[key] = Group(key)
        group.add(ts_ns, labels.get("level", "unknown"), line)


def pattern_totals(found: list[dict[str, Any]], matched: int) -> dict[str, Any]:
    """Loki's patterns, largest first, each with its `total` and first/last bucket as RFC 3339;
    `other` counts the matching lines no pattern accounts for (Loki detects patterns only in
    lines it has seen often enough, so rare ones are missing from its list, not absent)."""
    rows = []
    for pattern in found:
        samples = [  # [Unix seconds, lines]; a malformed one (from a broken upstream) is left out
            s for s in pattern.get("samples") or []
            if isinstance(s, list) and len(s) == 2 and is_unix_seconds(s[0]) and isinstance(s[1], int)
        ]
        total = sum(int(count) for _, count in samples)
        times = [int(at) * _NS for at, _ in samples]
        row = {**pattern, "samples": [[seconds_z(at), count] for at, count in samples], "total": total}
        if times:
            row["first_seen"], row["last_seen"] = format_ns(min(times)), format_ns(max(times))
        rows.append(row)
    rows.sort(key=lambda row: -row["total"])
    covered = sum(row["total"] for row in rows)
    return {
        "patterns": rows,
        "other": {"count": max(0, matched - covered)},
        "stats": {"matched": matched, "in_patterns": covered},
    }
