"""Pure LogQL helpers (no I/O, so all of it is table-tested): `build` makes queries from filters
with every value escaped, `scan` finds every stream selector of a client's query, `policy` injects
a key's label policy into each of them, `guardrails` checks what may go to Loki. Time itself:
gateway.services.times."""

from __future__ import annotations

from gateway.services.logql.build import (
    LABEL_NAME_RE,
    LEVELS,
    NARROW_HINT,
    Matcher,
    build_log_query,
    check_label_name,
    parse_levels,
    quote,
)
from gateway.services.logql.guardrails import (
    MATCH_ALL_PROBES,
    MATCH_ALL_REGEXES,
    POSITIVE_OPS,
    TRANSFORM_HINT,
    TRANSFORM_SCOPE,
    check_query_ranges,
    check_selectors_narrow,
    check_transforms,
    prepare_query,
    reach_back_ns,
    rewriting_stage,
)
from gateway.services.logql.policy import inject_policy, parse_policy
from gateway.services.logql.scan import MATCH_OPS, ScannedQuery, Selector, scan_query, selector_text

__all__ = [
    "LABEL_NAME_RE",
    "LEVELS",
    "MATCH_ALL_PROBES",
    "MATCH_ALL_REGEXES",
    "MATCH_OPS",
    "NARROW_HINT",
    "POSITIVE_OPS",
    "TRANSFORM_HINT",
    "TRANSFORM_SCOPE",
    "Matcher",
    "ScannedQuery",
    "Selector",
    "build_log_query",
    "check_label_name",
    "check_query_ranges",
    "check_selectors_narrow",
    "check_transforms",
    "inject_policy",
    "parse_levels",
    "parse_policy",
    "prepare_query",
    "quote",
    "reach_back_ns",
    "rewriting_stage",
    "scan_query",
    "selector_text",
]
