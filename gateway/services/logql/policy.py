"""A key's label policy: parsed once, and its matchers added to every selector of a query."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from gateway.services.logql.build import Matcher
from gateway.services.logql.scan import ScannedQuery, Selector, scan_query


@lru_cache(maxsize=256)  # a few policies, one per key; parsed on every request of their keys
def parse_policy(policy: str) -> tuple[Matcher, ...]:
    """A key's label policy: exactly one selector such as {source="gcs", namespace="gpt"}."""
    scanned = scan_query(policy)
    only = scanned.selectors[0]
    if len(scanned.selectors) != 1 or scanned.text[: only.start].strip() or scanned.text[only.end :].strip():
        raise ValueError(f'a label policy must be a single selector like {{source="gcs"}}, got {policy!r}')
    matchers = scanned.selectors[0].matchers
    if not matchers:
        raise ValueError("a label policy needs at least one matcher")
    return tuple(Matcher(m.name, m.op, m.value) for m in matchers)


def inject_policy(scanned: ScannedQuery, policy: Sequence[Matcher]) -> ScannedQuery:
    """Every selector of the query with the policy's matchers added (ANDed). A client matcher on
    the same label stays: {source="firestore"} under {source="gcs"} then matches nothing, which
    is the truthful answer for that key."""
    if not policy:
        return scanned
    parts: list[str] = []
    selectors: list[Selector] = []
    previous = 0
    for sel in scanned.selectors:
        parts.append(scanned.text[previous : sel.start])
        present = {m.render() for m in sel.matchers}
        added = [m for m in policy if m.render() not in present]
        matchers = (*sel.matchers, *added)
        rendered = "{" + ", ".join(m.render() for m in matchers) + "}"
        offset = sum(len(p) for p in parts)
        selectors.append(Selector(offset, offset + len(rendered), matchers))
        parts.append(rendered)
        previous = sel.end
    parts.append(scanned.text[previous:])
    return ScannedQuery("".join(parts), tuple(selectors), scanned.code)
