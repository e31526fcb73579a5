"""Loki's LogQL parse errors made actionable: the offending text quoted from the query that was
sent, and the usual fix for the usual mistakes (an unquoted string, a metric without a range)."""

from __future__ import annotations

import re

_POSITION = re.compile(r"parse error at line (\d+), col (\d+)")
SNIPPET_CHARS = 24
QUOTE_HINT = 'quote string values: |= "timeout", level="error", json | msg=~"rate.*"'
RANGE_HINT = 'a metric function needs a [range] after its selector, e.g. count_over_time({source="gcs"}[5m])'
GENERIC_HINT = "Loki rejected the query; check the LogQL syntax and parameters"


def offending_text(message: str, query: str) -> str | None:
    """The query's text around the line and column Loki names (1-based), None without one."""
    found = _POSITION.search(message)
    if found is None:
        return None
    lines = query.split("\n")
    line_no, col = int(found[1]), int(found[2])
    if not 1 <= line_no <= len(lines):
        return None
    line = lines[line_no - 1]
    at = min(max(col - 1, 0), len(line))
    return line[max(0, at - SNIPPET_CHARS) : at + SNIPPET_CHARS]


def explain(message: str, query: str | None) -> tuple[str, str]:
    """(message, hint) for a 400 from Loki about `query`."""
    if query is None or "parse error" not in message:
        return message, GENERIC_HINT
    snippet = offending_text(message, query)
    if snippet is not None:
        message = f"{message} (near: {snippet!r})"
    lowered = message.lower()
    if "unexpected identifier" in lowered:
        return message, QUOTE_HINT
    if "expecting [" in lowered or "range" in lowered or "unexpected )" in lowered:
        return message, RANGE_HINT
    return message, GENERIC_HINT
