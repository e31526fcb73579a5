"""The ordered substitutions over a line's UTF-8 bytes: whole blocks and self-describing tokens
first, then `name=value` pairs and XML elements, each with the text it cannot match without."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.services.redact.names import KEY_TRIGGERS, MASK_BYTES, MAX_KEY_CHARS, sensitive_key
from gateway.services.redact.pairs import KEY_CHAR, bytes_re, mask_pairs

Replacement = Callable[[Any], bytes]  # an RE2 match


@dataclass(frozen=True)
class Rule:
    """A substitution over UTF-8 bytes, and text the pattern cannot match without: `needs` (any
    of them) must occur in the line, in the line lower-cased when `any_case` (ASCII lines only:
    other lines always get the substitution, as case folding beyond ASCII is RE2's business)."""

    apply: Callable[[bytes], bytes]
    needs: tuple[bytes, ...]
    any_case: bool = False

    def may_match(self, data: bytes, lowered: bytes | None) -> bool:
        """`lowered`: `data` lower-cased, None when `data` is not ASCII."""
        if self.any_case:
            if lowered is None:
                return True
            data = lowered
        # a loop, not any(...): a third less per rule and line for these few needs
        for need in self.needs:  # noqa: SIM110
            if need in data:
                return True
        return False


def _sub(pattern: str, replacement: bytes | Replacement) -> Callable[[bytes], bytes]:
    """RE2 substitution: `replacement` is literal bytes (no group references) or a function."""
    compiled = bytes_re(pattern)

    def apply(data: bytes) -> bytes:
        out: list[bytes] = []
        done = 0
        for match in compiled.finditer(data):
            start, end = match.span()
            if start == end:
                continue
            out += (data[done:start], replacement if isinstance(replacement, bytes) else replacement(match))
            done = end
        if not out:
            return data
        out.append(data[done:])
        return b"".join(out)

    return apply


def _keep_group_1(suffix: bytes) -> Replacement:
    return lambda match: match.group(1) + suffix


def _xml_element(match: Any) -> bytes:
    whole: bytes = match.group(0)
    if sensitive_key(match.group(1)[-MAX_KEY_CHARS:]) and match.group(2) not in (b"", MASK_BYTES):
        return whole[: match.start(2) - match.start(0)] + MASK_BYTES
    return whole


# Ordered: whole blocks and self-describing tokens first, then `name=value` pairs.
RULES: tuple[Rule, ...] = (
    Rule(
        _sub(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*$)",
            b"[REDACTED PRIVATE KEY]",
        ),
        (b"PRIVATE KEY-----",),
    ),
    Rule(_sub(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", b"[REDACTED JWT]"), (b"eyJ",)),
    Rule(
        # `BearerS` too: a bearer token glued to the word
        _sub(
            r"(?i)\b(bearer\s*|(?:basic|apikey|token)\s+)[A-Za-z0-9._~+/=-]{8,}", _keep_group_1(MASK_BYTES)
        ),
        (b"bearer", b"basic", b"apikey", b"token"),
        any_case=True,
    ),
    # user:password@ in URLs (any scheme); the user name stays for debugging
    Rule(
        _sub(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", _keep_group_1(MASK_BYTES + b"@")),
        (b"://",),
    ),
    Rule(
        _sub(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b", b"[REDACTED AWS KEY]"),
        (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA"),
    ),
    Rule(
        _sub(r"\b(?:sk|rk|pk)[-_](?:live[-_]|test[-_]|proj[-_]|ant[-_])?[A-Za-z0-9_-]{16,}", MASK_BYTES),
        (b"k-", b"k_"),
    ),
    Rule(_sub(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", MASK_BYTES), (b"gh",)),
    Rule(_sub(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", MASK_BYTES), (b"xox",)),
    Rule(_sub(r"\bAIza[0-9A-Za-z_-]{35}\b", MASK_BYTES), (b"AIza",)),
    Rule(_sub(r"\bgwk_[A-Za-z0-9_-]{20,}", MASK_BYTES), (b"gwk_",)),  # this gateway's own keys
    Rule(
        _sub(
            r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
            _keep_group_1(MASK_BYTES),
        ),
        (b"hooks.slack.com",),
    ),
    # name=value / name: value / "name": "value" / name => value / --name value
    Rule(mask_pairs, (*(t.encode() for t in KEY_TRIGGERS), b"\\u", b"%"), any_case=True),
    # <password>...</password>
    Rule(_sub(rf"<({KEY_CHAR}+)(?:\s[^<>]*)?>([^<]*)", _xml_element), (b"</",)),
)

