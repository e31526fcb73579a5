"""Building LogQL from filters: every label name checked, every value quoted by us, so no value
can end a string early or add a matcher."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.services.errors import QueryError

LEVELS = ("debug", "info", "warn", "error", "critical", "unknown")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

NARROW_HINT = (
    "add at least one positive matcher that selects specific streams, e.g. "
    '{source="gcs"} or {service_name="trades", level="error"}'
)


def quote(value: str) -> str:
    """`value` as a LogQL double-quoted string. JSON's escaping is a subset of Go's, which LogQL
    uses, so the result decodes back to exactly `value` and cannot end early."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str  # decoded value
    text: str = ""  # the literal as written (for client matchers we keep their spelling)

    def render(self) -> str:
        return self.text or f"{self.name}{self.op}{quote(self.value)}"


def check_label_name(name: str) -> str:
    if not LABEL_NAME_RE.fullmatch(name):
        raise QueryError(
            "invalid_label",
            f"invalid label name {name!r}",
            "label names match [a-zA-Z_][a-zA-Z0-9_]*",
        )
    return name


def parse_levels(raw: Iterable[str]) -> list[str]:
    """Level filter values, comma-separated or repeated, checked against the label schema."""
    levels: list[str] = []
    for item in raw:
        for part in item.split(","):
            level = part.strip().lower()
            if not level:
                continue
            if level not in LEVELS:
                raise QueryError(
                    "invalid_level",
                    f"unknown level {part.strip()!r}",
                    f"use one or more of: {', '.join(LEVELS)}",
                )
            if level not in levels:
                levels.append(level)
    return levels


def build_log_query(
    labels: Mapping[str, str | Sequence[str]],
    *,
    levels: Sequence[str] = (),
    contains: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """`{name="value", ..., level=~"a|b"} |= "contains" | meta="value"` with every value quoted.
    A label mapped to several values becomes a regex of the escaped values (Loki anchors it);
    `metadata` filters structured metadata (and parsed labels) after the line filter."""
    matchers: list[Matcher] = []
    for name, value in labels.items():
        check_label_name(name)
        if isinstance(value, str):
            matchers.append(Matcher(name, "=", value))
        elif len(value) == 1:
            matchers.append(Matcher(name, "=", value[0]))
        elif value:
            matchers.append(Matcher(name, "=~", "|".join(re.escape(v) for v in value)))
    if len(levels) == 1:
        matchers.append(Matcher("level", "=", levels[0]))
    elif levels:
        matchers.append(Matcher("level", "=~", "|".join(re.escape(v) for v in levels)))
    if not matchers:
        raise QueryError("query_too_broad", "no label filter given", NARROW_HINT)
    query = "{" + ", ".join(m.render() for m in matchers) + "}"
    if contains:
        query += f" |= {quote(contains)}"
    for name, value in (metadata or {}).items():
        query += f" | {check_label_name(name)}={quote(value)}"
    return query

