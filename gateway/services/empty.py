"""Why a log page is empty: no stream matched the selector (with the closest values of its labels),
streams matched but the query's filters removed every line, or the selector asks for what the
key's label policy excludes. An agent that gets `"streams": []` otherwise cannot tell a typo from
a quiet service.

Every question to Loki carries the key's policy: whether streams outside it exist is never asked,
since one bit an answer (hidden or not there) would let a restricted key map them out, a regex at
a time. `hidden_by_policy` is decided from the query's own text."""

from __future__ import annotations

import difflib
import re
from typing import Any

from gateway.services.logql import Matcher, ScannedQuery, parse_policy
from gateway.services.loki import LokiClient

MAX_SUGGESTIONS = 5
CLOSENESS = 0.5  # difflib ratio: "tradse" and "trades" are close, "api" and "trades" are not


def _render(matchers: tuple[Matcher, ...] | list[Matcher]) -> str:
    return "{" + ", ".join(m.render() for m in matchers) + "}"


async def explain_empty(
    loki: LokiClient,
    scanned: ScannedQuery,
    *,
    label_policy: str | None,
    start_ns: int,
    end_ns: int,
    tenant: str | None,
) -> dict[str, Any]:
    """The explanation of an empty page of `scanned` (the query with the key's policy injected)."""
    for sel in scanned.selectors:
        if await loki.labels(start_ns=start_ns, end_ns=end_ns, query=_render(sel.matchers), tenant=tenant):
            return {
                "reason": "filtered_out",
                "message": "streams matched the selector in this range, but the query's line filters "
                "or label filters removed every line",
                "hint": "loosen the filters after the selector, or widen the time range",
            }
    policy = parse_policy(label_policy) if label_policy else ()
    own = _own_matchers(scanned, policy)
    if _asks_outside(own, policy):
        return {
            "reason": "hidden_by_policy",
            "message": f"the selector asks for label values this key's label policy ({label_policy}) "
            "excludes",
            "hint": "use a key whose label policy covers these streams",
        }
    return {
        "reason": "no_stream_matched",
        "message": "no stream matched the selector in this range",
        "hint": "check the label values (closest ones below), or widen the time range",
        "closest_values": await _closest_values(loki, own, label_policy or None, start_ns, end_ns, tenant),
    }


def _own_matchers(scanned: ScannedQuery, policy: tuple[Matcher, ...]) -> list[Matcher]:
    """The first selector's matchers the caller wrote (not injected by the key's policy)."""
    if not scanned.selectors:
        return []
    policy_texts = {m.render() for m in policy}
    return [m for m in scanned.selectors[0].matchers if m.render() not in policy_texts]


def _asks_outside(own: list[Matcher], policy: tuple[Matcher, ...]) -> bool:
    """One of the caller's `label="value"` matchers names a value the policy's matcher on that
    label refuses (`source="pod"` under `{source="gcs"}`)."""
    return any(mine.op == "=" and rule.name == mine.name and not _accepts(rule, mine.value)
               for mine in own for rule in policy)


def _accepts(rule: Matcher, value: str) -> bool:
    if rule.op == "=":
        return value == rule.value
    if rule.op == "!=":
        return value != rule.value
    try:
        matched = re.fullmatch(rule.value, value) is not None  # LogQL regexes are anchored
    except re.error:
        return True  # a pattern Python cannot read: not claimed as excluded
    return matched if rule.op == "=~" else not matched


async def _closest_values(
    loki: LokiClient, own: list[Matcher], scope: str | None, start_ns: int, end_ns: int, tenant: str | None
) -> dict[str, list[str]]:
    """For each `label="value"` matcher whose value no stream has, the closest values that exist."""
    suggestions: dict[str, list[str]] = {}
    for matcher in own:
        if matcher.op != "=":
            continue
        values = await loki.label_values(
            matcher.name, start_ns=start_ns, end_ns=end_ns, query=scope, tenant=tenant
        )
        if matcher.value in values:
            continue
        close = difflib.get_close_matches(matcher.value, values, n=MAX_SUGGESTIONS, cutoff=CLOSENESS)
        suggestions[matcher.name] = close or values[:MAX_SUGGESTIONS]
    return suggestions
