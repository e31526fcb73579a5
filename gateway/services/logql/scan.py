"""Scanning a client's LogQL: its stream selectors (with their matchers decoded) and the code
between strings, which the guardrails read.

A small scanner understands LogQL's lexical structure that matters for this: double-quoted strings
with Go escapes, backtick raw strings, `#` comments, and `{...}` stream selectors. Braces inside
strings (line_format / label_format templates, filter strings) are therefore never taken for
selectors, and a value can never end a string early, because values are re-quoted by us."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from gateway.services.errors import QueryError
from gateway.services.logql.build import LABEL_NAME_RE, Matcher

MATCH_OPS = ("=~", "!~", "!=", "=")  # longest first for scanning
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


def _refusal(query: str, i: int) -> QueryError | None:
    """The error for what starts at query[i] outside strings and selectors, if it may not."""
    if query[i] == "'":
        return QueryError(
            "invalid_query",
            "single quotes are not LogQL strings",
            'use "double quotes" or `backticks` for strings',
        )
    if query.startswith(("/*", "//"), i):
        # Loki's scanner (Go's text/scanner) skips /* */ and // comments: what we would read
        # as a string could then be a selector to Loki, escaping the label policy
        return QueryError(
            "invalid_query",
            f"{query[i : i + 2]} comments are not allowed (offset {i})",
            "use # for a comment",
        )
    if query[i] == "}":
        return QueryError(
            "invalid_query",
            f"unbalanced }} at offset {i}",
            "every } must close a stream selector {...}",
        )
    return None


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
        elif char in "'/}" and (refusal := _refusal(query, i)) is not None:
            raise refusal
        elif char == "{":
            code.append(query[piece_start:i])
            out.append(query[piece_start:i])
            offset = sum(len(p) for p in out)
            parsed = _parse_selector(query, i)
            selectors.append(Selector(offset, offset + parsed.end - parsed.start, parsed.matchers))
            out.append(query[parsed.start : parsed.end])
            i = piece_start = parsed.end
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


def selector_text(scanned: ScannedQuery) -> str:
    """The selectors of a query, for index/stats (which accepts matchers only)."""
    return " or ".join(scanned.text[s.start : s.end] for s in scanned.selectors)
