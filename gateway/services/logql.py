"""Pure LogQL helpers: build queries from filters with every user value escaped, find and check
every stream selector of a client's query, inject a key's label policy into each of them, and
check time ranges (time itself: gateway.services.times). No I/O here, so all of it is table-tested.

A small scanner understands LogQL's lexical structure that matters for this: double-quoted strings
with Go escapes, backtick raw strings, `#` comments, and `{...}` stream selectors. Braces inside
strings (line_format / label_format templates, filter strings) are therefore never taken for
selectors, and a value can never end a string early, because values are re-quoted by us."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import re2

from gateway.services.errors import NotPermitted, QueryError
from gateway.services.times import NS_PER_HOUR, parse_duration_ns

LEVELS = ("debug", "info", "warn", "error", "critical", "unknown")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MATCH_OPS = ("=~", "!~", "!=", "=")  # longest first for scanning
POSITIVE_OPS = frozenset({"=", "=~"})
# regexes that select every stream having the label, whatever its value
MATCH_ALL_REGEXES = frozenset({".*", ".+", ".*?", ".+?", "(.*)", "(.+)", "^.*$", "^.+$", "(?s).*", "(?s).+"})
_RE2_QUIET = re2.Options()
_RE2_QUIET.log_errors = False  # a caller's bad regex is a 400 from Loki, not a line on our stderr
# values unlike each other: a regex matching all of them matches any value
MATCH_ALL_PROBES = ("a", "Z", "0", "gcs", "trades-2024_x.y", "a/b:c", "Zq9~%é")
_RANGE_RE = re.compile(r"\[\s*([0-9][0-9a-zµ.]*)\s*\]")
_OFFSET_RE = re.compile(r"\boffset\s+([0-9][0-9a-zµ.]*)")
_GO_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}

NARROW_HINT = (
    "add at least one positive matcher that selects specific streams, e.g. "
    '{source="gcs"} or {service_name="trades", level="error"}'
)


# ---------------------------------------------------------------------------------------------
# building queries from filters


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


# ---------------------------------------------------------------------------------------------
# scanning client queries


def _unquote_go(literal: str) -> str:
    """Decode a LogQL string literal ("..." with Go escapes, or `raw`)."""
    if literal.startswith("`"):
        return literal[1:-1]
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in _GO_SIMPLE_ESCAPES:
            out.append(_GO_SIMPLE_ESCAPES[code])
            i += 2
        elif code in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[code]
            point = int(body[i + 2 : i + 2 + width], 16)
            if point > sys.maxunicode:
                raise QueryError(
                    "invalid_query",
                    f"escape \\{code} beyond Unicode in {literal}",
                    "check the string's escapes",
                )
            out.append(chr(point))
            i += 2 + width
        elif code in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise QueryError(
                "invalid_query",
                f"unknown escape \\{code} in {literal}",
                "check the string's escapes",
            )
    return "".join(out)


def _scan_string(text: str, i: int) -> int:
    """Index just past the string literal starting at text[i] (a quote or backtick)."""
    quote_char = text[i]
    j = i + 1
    while j < len(text):
        char = text[j]
        if quote_char == '"' and char == "\\":
            esc = text[j + 1 : j + 2]
            width = {"x": 2, "u": 4, "U": 8}.get(esc)
            if width is not None:
                digits = text[j + 2 : j + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise QueryError(
                        "invalid_query",
                        f"bad \\{esc} escape at offset {j}",
                        "use \\xHH, \\uHHHH or \\UHHHHHHHH",
                    )
                j += 2 + width
                continue
            if esc and esc in "01234567":
                digits = text[j + 1 : j + 4]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise QueryError(
                        "invalid_query",
                        f"bad octal escape at offset {j}",
                        "use three octal digits, e.g. \\101",
                    )
                j += 4
                continue
            if esc not in _GO_SIMPLE_ESCAPES:
                raise QueryError(
                    "invalid_query",
                    f"unknown escape \\{esc} at offset {j}",
                    "escape backslashes as \\\\",
                )
            j += 2
            continue
        if char == "\n" and quote_char == '"':
            break
        if char == quote_char:
            return j + 1
        j += 1
    raise QueryError(
        "invalid_query",
        f"unterminated string starting at offset {i}",
        'close every "..." and `...` string; inside "..." write \\" for a quote',
    )


@dataclass(frozen=True)
class Selector:
    start: int  # offset of "{"
    end: int  # offset just past "}"
    matchers: tuple[Matcher, ...]


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _parse_selector(text: str, i: int) -> Selector:
    """Parse the `{...}` starting at text[i]."""
    start, i = i, _skip_space(text, i + 1)
    matchers: list[Matcher] = []
    if i < len(text) and text[i] == "}":
        return Selector(start, i + 1, ())
    while True:
        name_match = LABEL_NAME_RE.match(text, i)
        if not name_match:
            raise QueryError(
                "invalid_query",
                f"expected a label name at offset {i} in the stream selector",
                'a selector looks like {name="value", other=~"regex"}',
            )
        name, i = name_match.group(0), _skip_space(text, name_match.end())
        op = next((o for o in MATCH_OPS if text.startswith(o, i)), None)
        if op is None:
            raise QueryError(
                "invalid_query",
                f"expected =, !=, =~ or !~ after {name!r}",
                'matchers are name="value"',
            )
        i = _skip_space(text, i + len(op))
        if i >= len(text) or text[i] not in '"`':
            raise QueryError(
                "invalid_query",
                f"expected a quoted value after {name}{op}",
                'quote values: name="value"',
            )
        value_end = _scan_string(text, i)
        literal = text[i:value_end]
        matchers.append(Matcher(name, op, _unquote_go(literal), f"{name}{op}{literal}"))
        i = _skip_space(text, value_end)
        if i < len(text) and text[i] == ",":
            i = _skip_space(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            return Selector(start, i + 1, tuple(matchers))
        raise QueryError(
            "invalid_query",
            f"expected , or }} at offset {i} in the stream selector",
            "close the selector with }",
        )


@dataclass(frozen=True)
class ScannedQuery:
    """A query split into code segments and the stream selectors between them."""

    text: str  # the query with comments removed
    selectors: tuple[Selector, ...]
    code: tuple[str, ...]  # text outside strings and selectors (for range checks)

    @property
    def is_log_query(self) -> bool:
        return self.text.lstrip().startswith("{")


def scan_query(query: str) -> ScannedQuery:
    if not query.strip():
        raise QueryError(
            "invalid_query",
            "the query is empty",
            'give a LogQL query such as {source="gcs"} |= "error"',
        )
    out: list[str] = []  # query without comments
    code: list[str] = []
    selectors: list[Selector] = []
    i, piece_start = 0, 0
    while i < len(query):
        char = query[i]
        if char in '"`':
            end = _scan_string(query, i)
            code.append(query[piece_start:i])
            out.append(query[piece_start:end])
            i = piece_start = end
        elif char == "#":  # a comment runs to the end of the line; we drop it
            end = query.find("\n", i)
            end = len(query) if end < 0 else end
            code.append(query[piece_start:i])
            out.append(query[piece_start:i])
            i = piece_start = end
        elif char == "'":
            raise QueryError(
                "invalid_query",
                "single quotes are not LogQL strings",
                'use "double quotes" or `backticks` for strings',
            )
        elif query.startswith(("/*", "//"), i):
            # Loki's scanner (Go's text/scanner) skips /* */ and // comments: what we would read
            # as a string could then be a selector to Loki, escaping the label policy
            raise QueryError(
                "invalid_query",
                f"{query[i : i + 2]} comments are not allowed (offset {i})",
                "use # for a comment",
            )
        elif char == "{":
            code.append(query[piece_start:i])
            out.append(query[piece_start:i])
            offset = sum(len(p) for p in out)
            parsed = _parse_selector(query, i)
            selectors.append(Selector(offset, offset + parsed.end - parsed.start, parsed.matchers))
            out.append(query[parsed.start : parsed.end])
            i = piece_start = parsed.end
        elif char == "}":
            raise QueryError(
                "invalid_query",
                f"unbalanced }} at offset {i}",
                "every } must close a stream selector {...}",
            )
        else:
            i += 1
    code.append(query[piece_start:])
    out.append(query[piece_start:])
    if not selectors:
        raise QueryError(
            "invalid_query",
            "the query has no stream selector",
            'every LogQL query needs one, e.g. {source="gcs"}',
        )
    return ScannedQuery("".join(out), tuple(selectors), tuple(code))


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


# ---------------------------------------------------------------------------------------------
# guardrails


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


def selector_text(scanned: ScannedQuery) -> str:
    """The selectors of a query, for index/stats (which accepts matchers only)."""
    return " or ".join(scanned.text[s.start : s.end] for s in scanned.selectors)
