"""Evidence: per-template aggregates ranked by importance, compared with the previous window,
and a deterministic plain-language digest of them (the answer when no model is available)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.services.templates import TemplateMiner, TemplateStats
from gateway.services.times import format_ns

GROWTH_FACTOR = 2.0  # "growing": at least this many times the previous window's rate
GROWTH_MIN_LINES = 10  # ... and at least this many more lines, so 1 -> 2 is not news
SEVERITY = {"critical": 3, "error": 3, "warn": 2}


class Change(StrEnum):
    NEW = "new"
    GROWING = "growing"
    STEADY = "steady"
    SHRINKING = "shrinking"
    NO_BASELINE = "no_baseline"  # the previous window had no lines to compare with


@dataclass(frozen=True)
class EvidenceRow:
    template_id: str
    template: str
    count: int
    previous_count: int
    change: Change
    levels: dict[str, int]
    services: list[str]
    first_seen_ns: int
    last_seen_ns: int
    samples: tuple[str, ...]
    codes: tuple[str, ...] = ()

    @property
    def severity(self) -> int:
        return max((SEVERITY.get(level, 1) for level in self.levels), default=1)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.template_id,
            "template": self.template,
            "count": self.count,
            "previous_count": self.previous_count,
            "change": self.change.value,
            "levels": self.levels,
            "services": self.services,
            "first_seen": format_ns(self.first_seen_ns),
            "last_seen": format_ns(self.last_seen_ns),
            "samples": list(self.samples),
            "codes": list(self.codes),
        }


def classify(stats: TemplateStats, scale: float | None) -> Change:
    """`scale` turns a previous count into the current window's terms; None: no baseline."""
    if scale is None:
        return Change.NO_BASELINE
    expected = stats.previous_count * scale
    if stats.previous_count == 0:
        return Change.NEW
    if stats.count >= GROWTH_FACTOR * expected and stats.count - expected >= GROWTH_MIN_LINES:
        return Change.GROWING
    if expected >= GROWTH_FACTOR * stats.count and expected - stats.count >= GROWTH_MIN_LINES:
        return Change.SHRINKING
    return Change.STEADY


_CHANGE_RANK = {
    Change.NEW: 3,
    Change.GROWING: 2,
    Change.NO_BASELINE: 1,
    Change.STEADY: 1,
    Change.SHRINKING: 0,
}


def build_evidence(
    miner: TemplateMiner, *, lines: int, previous_lines: int, comparable: bool
) -> list[EvidenceRow]:
    """Rank templates seen in the current window: severity, then novelty, then volume.

    `comparable` is false when either window was cut at the line limit; the comparison then uses
    each template's share of its window instead of raw counts.
    """
    scale: float | None = None
    if previous_lines:
        scale = 1.0 if comparable else lines / previous_lines
    rows = [
        EvidenceRow(
            template_id=stats.template_id,
            template=miner.template_text(stats.cluster_id),
            count=stats.count,
            previous_count=stats.previous_count,
            change=classify(stats, scale),
            levels=dict(stats.levels.most_common()),
            services=[name for name, _ in stats.services.most_common()],
            first_seen_ns=stats.first_ns or 0,
            last_seen_ns=stats.last_ns or 0,
            samples=tuple(stats.samples),
            codes=stats.codes,
        )
        for stats in miner.stats()
        if stats.count > 0
    ]
    rows.sort(key=lambda r: (-r.severity, -_CHANGE_RANK[r.change], -r.count, r.template_id))
    return rows


def disappeared(miner: TemplateMiner) -> int:
    return sum(1 for stats in miner.stats() if stats.count == 0 and stats.previous_count > 0)


def _templates(count: int) -> str:
    return f"{count} template is" if count == 1 else f"{count} templates are"


def headline(rows: list[EvidenceRow], *, lines: int) -> str:
    """One line naming the incident: the top template (most severe, then newest, then largest)
    with its count, codes, services and since when."""
    if lines == 0 or not rows:
        return "No log lines matched the selector in this window."
    top = rows[0]
    level = next(iter(top.levels), "unknown")
    change = {Change.NEW: "New", Change.GROWING: "Growing"}.get(top.change, "Top")
    if top.change is Change.NO_BASELINE:  # the previous window had no matching line at all
        change = "New"
    codes = f" (code{'s' if len(top.codes) > 1 else ''} {', '.join(top.codes)})" if top.codes else ""
    services = f" in {', '.join(top.services[:3])}" if top.services else ""
    return (
        f"{change}: {top.count} x {level} \"{top.template[:160]}\"{codes}{services}"
        f" since {format_ns(top.first_seen_ns)} ({top.count} of {lines} lines)."
    )


def plain_digest(rows: list[EvidenceRow], *, lines: int, truncated: bool, gone: int, top: int = 5) -> str:
    """A deterministic summary built only from the evidence."""
    if lines == 0:
        return "No log lines matched the selector in this window."
    first = headline(rows, lines=lines)
    errors = sum(r.levels.get("error", 0) + r.levels.get("critical", 0) for r in rows)
    warnings = sum(r.levels.get("warn", 0) for r in rows)
    parts = [
        first,
        f"Read {lines} lines{' (truncated at the line limit)' if truncated else ''} forming "
        f"{len(rows)} template{'' if len(rows) == 1 else 's'}; "
        f"{errors} at error/critical level, {warnings} at warn level."
    ]
    new = [r for r in rows if r.change is Change.NEW]
    growing = [r for r in rows if r.change is Change.GROWING]
    if new:
        parts.append(f"{_templates(len(new))} new compared with the previous window.")
    if growing:
        parts.append(f"{_templates(len(growing))} growing compared with the previous window.")
    if gone:
        parts.append(f"{gone} template{'' if gone == 1 else 's'} of the previous window did not occur.")
    parts.append("Most important:")
    for row in rows[:top]:
        levels = ", ".join(f"{n} {level}" for level, n in row.levels.items())
        change = "" if row.change in (Change.STEADY, Change.NO_BASELINE) else f", {row.change.value}"
        if row.change is not Change.NEW and row.previous_count:
            change += f" (previously {row.previous_count})"
        parts.append(f"- [{row.template_id}] x{row.count} ({levels}{change}): {row.template[:200]}")
    return "\n".join(parts)
