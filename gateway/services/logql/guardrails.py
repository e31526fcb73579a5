"""What a client's query must pass before it goes to Loki: selectors narrow enough, range vectors
within the time limit, and (for keys without the transform scope) no stage that rewrites text out
of the redactor's reach. `prepare_query` runs them all, with the key's policy injected."""

from __future__ import annotations

import re

import re2

from gateway.services.errors import NotPermitted, QueryError
from gateway.services.logql.build import NARROW_HINT, Matcher
from gateway.services.logql.policy import inject_policy, parse_policy
from gateway.services.logql.scan import ScannedQuery, scan_query
from gateway.services.times import NS_PER_HOUR, parse_duration_ns

POSITIVE_OPS = frozenset({"=", "=~"})
# regexes that select every stream having the label, whatever its value
MATCH_ALL_REGEXES = frozenset({".*", ".+", ".*?", ".+?", "(.*)", "(.+)", "^.*$", "^.+$", "(?s).*", "(?s).+"})
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # a caller's bad regex is a 400 from Loki, not a line on our stderr
# values unlike each other: a regex matching all of them matches any value
MATCH_ALL_PROBES = ("a", "Z", "0", "gcs", "trades-2024_x.y", "a/b:c", "Zq9~%é")
_RANGE_RE = re.compile(r"\[\s*([0-9][0-9a-zµ.]*)\s*\]")
_OFFSET_RE = re.compile(r"\boffset\s+([0-9][0-9a-zµ.]*)")


def _matches_everything(matcher: Matcher) -> bool:
    if matcher.op not in POSITIVE_OPS:
        return True
    if matcher.op == "=":
        return matcher.value == ""
    regex = matcher.value.strip()
    if regex in MATCH_ALL_REGEXES:
        return True
    try:
        # RE2, as Loki uses: linear time whatever the caller sends, and the same syntax
        compiled = re2.compile(regex, _RE2_QUIET)
    except (re2.error, ValueError):  # ValueError: text RE2 cannot take (a lone surrogate)
        return False  # Loki decides; not our guardrail's business
    if compiled.fullmatch("") is not None:
        return True
    # any-value spellings beyond the list (.{1,}, [\s\S]+, ..+, (?i).+): matches every probe
    return all(compiled.fullmatch(probe) is not None for probe in MATCH_ALL_PROBES)


def check_selectors_narrow(scanned: ScannedQuery) -> None:
    """Reject selectors that would read every stream: {}, only negative matchers, or only
    match-all regexes such as =~".*" / =~".+"."""
    for sel in scanned.selectors:
        if all(_matches_everything(m) for m in sel.matchers):
            shown = scanned.text[sel.start : sel.end]
            raise QueryError(
                "query_too_broad",
                f"the stream selector {shown} matches every stream",
                NARROW_HINT,
            )


def reach_back_ns(scanned: ScannedQuery) -> int:
    """How far before its evaluation time a metric query reads: its longest range vector plus its
    longest `offset` (0 for a log query)."""
    ranges = offsets = 0
    for segment in scanned.code:
        for match in _RANGE_RE.finditer(segment):
            ranges = max(ranges, parse_duration_ns(match.group(1)))
        for match in _OFFSET_RE.finditer(segment):
            offsets = max(offsets, parse_duration_ns(match.group(1)))
    return ranges + offsets


def check_query_ranges(scanned: ScannedQuery, max_range_hours: float) -> None:
    """Range vectors like [7d] in metric queries stay within the same limit as the time range."""
    max_ns = int(max_range_hours * NS_PER_HOUR)
    for segment in scanned.code:
        for match in _RANGE_RE.finditer(segment):
            if parse_duration_ns(match.group(1)) > max_ns:
                raise QueryError(
                    "range_too_long",
                    f"range [{match.group(1)}] is longer than the allowed {max_range_hours:g}h",
                    f"use a range of at most {max_range_hours:g}h",
                )


# Stages that write line text or label values the redactor cannot recognise any more: a template
# can urlencode, replace or slice a secret (`line_format "{{.password | urlencode}}"`), rename the
# label that named it (`label_format v=password`), and an extraction (`regexp`, `pattern`, `json
# v="password"`, `label_replace`) can put it under a harmless name. Redaction works on names and
# shapes, so these need the transform scope (or redaction switched off).
TRANSFORM_SCOPE = "logs:transform"
_REWRITING_STAGE_RE = re.compile(
    r"\|\s*(line_format|label_format|regexp|pattern)\b(?!\s*(?:=|!=|=~|!~|>|<))"  # not a label filter
)
_EXTRACTING_PARSER_RE = re.compile(r"\|\s*(json|logfmt)\b(?:\s+--[a-z-]+)*\s*(?=[A-Za-z_])")
_LABEL_REPLACE_RE = re.compile(r"\b(label_replace)\s*\(")
TRANSFORM_HINT = (
    "line_format, label_format, regexp, pattern, json/logfmt with extraction parameters and "
    "label_replace can rewrite a secret past redaction; filter with |= / |~, parse with a plain "
    "| json or | logfmt, or use a key with the 'logs:transform' (or 'admin') scope"
)


def rewriting_stage(scanned: ScannedQuery) -> str | None:
    """The first stage of the query that rewrites lines or labels, or None."""
    for segment in scanned.code:
        for pattern in (_REWRITING_STAGE_RE, _EXTRACTING_PARSER_RE, _LABEL_REPLACE_RE):
            found = pattern.search(segment)
            if found:
                extracting = pattern is _EXTRACTING_PARSER_RE
                return found.group(1) + (" with extraction parameters" if extracting else "")
    return None


def check_transforms(scanned: ScannedQuery) -> None:
    stage = rewriting_stage(scanned)
    if stage is not None:
        raise NotPermitted(
            "transform_not_allowed",
            f"this key may not run {stage}: it rewrites log text out of the redactor's reach",
            TRANSFORM_HINT,
        )


def prepare_query(
    query: str, policy: str | None, *, max_range_hours: float, allow_transforms: bool = True
) -> ScannedQuery:
    """Scan a client's LogQL, inject the key's policy, and apply the guardrails (without
    `allow_transforms`: refuse stages that rewrite lines or labels)."""
    scanned = scan_query(query)
    if not allow_transforms:
        check_transforms(scanned)
    if policy:
        scanned = inject_policy(scanned, parse_policy(policy))
    check_selectors_narrow(scanned)
    check_query_ranges(scanned, max_range_hours)
    return scanned

