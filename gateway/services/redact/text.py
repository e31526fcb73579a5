"""Redacting text: one trigger scan finds the few lines that may hold a secret (for a page of
lines: one scan over all of them); every other line skips the substitutions, and a line that gets
them skips each rule whose required text it lacks."""

from __future__ import annotations

import operator
from bisect import bisect_right
from itertools import accumulate, repeat

import re2

from gateway.services.redact.names import KEY_TRIGGERS
from gateway.services.redact.rules import RULES

# Any of these (in any case) must appear for a line to possibly hold a secret.
_TRIGGERS = (
    *KEY_TRIGGERS,
    "bearer",
    "basic",
    "://",
    "akia",
    "asia",
    "agpa",
    "aida",
    "aroa",
    "anpa",
    "sk-",
    "sk_",
    "rk_",
    "rk-",
    "pk_",
    "pk-",
    "eyj",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "xox",
    "aiza",
    "private",
    "gwk_",
    "hooks.slack",
)
# an escape (\u0070assword, p%61ssword) or any non-ASCII character (fullwidth or zero-width text)
_ENCODED = r"\\u|%[0-9a-f]{2}|[^\x00-\x7f]"

_TRIGGER_BYTES_RE = re2.compile(
    ("(?i)" + "|".join(re2.escape(trigger) for trigger in _TRIGGERS) + "|" + _ENCODED).encode()
)


def _lowered(data: bytes) -> bytes | None:
    return data.lower() if data.isascii() else None


def _substitute_bytes(data: bytes) -> bytes:
    lowered = _lowered(data)
    for rule in RULES:
        if rule.may_match(data, lowered):
            masked = rule.apply(data)
            if masked != data:
                data, lowered = masked, _lowered(masked)
    return data


def _substitute(text: str) -> str:
    data = text.encode(errors="surrogatepass")
    masked = _substitute_bytes(data)
    return text if masked is data else masked.decode(errors="surrogatepass")


def substitute_all(text: str) -> str:
    """Every rule applied, without the shortcuts (what `redact` must equal; for tests)."""
    data = text.encode(errors="surrogatepass")
    for rule in RULES:
        data = rule.apply(data)
    return data.decode(errors="surrogatepass")


def redact_many(lines: list[str]) -> list[str]:
    """`redact` over many lines: one trigger scan over all of them (joined) finds the lines that
    need the substitutions; `lines` itself comes back when none does."""
    if not lines:
        return lines
    text = "\n".join(lines)
    if text.isascii():
        data, sizes = text.encode("ascii"), list(map(len, lines))
    else:
        encoded = [line.encode(errors="surrogatepass") for line in lines]
        data, sizes = b"\n".join(encoded), list(map(len, encoded))
    # ends[i]: offset just past line i and its separator, i.e. where line i + 1 starts
    ends = list(accumulate(map(operator.add, sizes, repeat(1))))
    masked: list[str] | None = None
    search = _TRIGGER_BYTES_RE.search
    found = search(data)
    while found is not None:  # no trigger spans a separator: each match lies in one line
        index = bisect_right(ends, found.start())
        if masked is None:
            masked = list(lines)
        masked[index] = _substitute(lines[index])
        found = search(data, ends[index]) if index + 1 < len(lines) else None
    return lines if masked is None else masked


def redact(text: str) -> str:
    """`text` with secrets replaced by [REDACTED...] markers; unchanged when none are found."""
    data = text.encode(errors="surrogatepass")
    if _TRIGGER_BYTES_RE.search(data) is None:
        return text
    masked = _substitute_bytes(data)
    return text if masked is data else masked.decode(errors="surrogatepass")

