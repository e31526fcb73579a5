"""Masking `name=value` pairs: any key followed by a separator is a candidate when it holds a
trigger word (or an escape, or non-ASCII text); the key is then decoded and judged by
`sensitive_name`, so `token_value=`, `passphrase=`, `pass\\u0077ord`, a fullwidth `password` and
`--password S` are all caught. Keys are found by one search each; a value is read (anchored) only
after a sensitive key, so the work stays linear."""

from __future__ import annotations

from typing import Any

import re2

from gateway.services.redact.names import KEY_TRIGGERS, MASK_BYTES, MAX_KEY_CHARS, sensitive_key


def bytes_re(pattern: str) -> Any:
    """An RE2 pattern over UTF-8 bytes."""
    return re2.compile(pattern.encode())

# a key character: letters and digits of any script, _ . -, format characters (zero-width), and
# escapes (\uXXXX at any JSON nesting depth, %XX) other than those of = and : (which separate)
KEY_CHAR = (
    r"(?:[\pL\pN_.\-\p{Cf}]"
    r"|\\+u(?:[1-9a-fA-F][0-9a-fA-F]{3}|0[1-9a-fA-F][0-9a-fA-F]{2}|00[0-24-9a-fA-F][0-9a-fA-F]"
    r"|003[0-9b-cB-CeEfF])"
    r"|%(?:[0-24-9a-fA-F][0-9a-fA-F]|3[0-9b-cB-CeEfF]))"
)
_KEY = rf"{KEY_CHAR}*(?i:{'|'.join(KEY_TRIGGERS)}|\\u|%|[^\x00-\x7f]){KEY_CHAR}*"
_SPACE = r"(?:\s|\\+[tnr])*"  # a JSON-encoded line writes a tab as \t
_SEPARATOR = rf"{_SPACE}(?:=>|:=|[:=]|%3[dDaA]|\\+u003[dDaA]|&#(?:0*(?:58|61)|[xX]0*3[aAdD]);){_SPACE}"
# `key<sep>` or a command-line flag `--key value`; group 1: a flag's key, group 2: a pair's key
_PAIR_KEY_RE = bytes_re(rf"""(?:^|[\s"'])--?({_KEY})[ \t]+|({_KEY})(?:\\*["'])?{_SEPARATOR}""")
_AUTH_SCHEME = r"(?i:bearer|basic|digest|negotiate|apikey|token)[ \t]+"
# the value after the separator: a quote (escaped at any depth: \", \\\") starts a quoted value;
# otherwise group 1 is an auth scheme word kept in front of the masked value
_VALUE_RE = bytes_re(rf"""\\*["']|\[[^\]]*\]?|({_AUTH_SCHEME})?[^\s"',;&}}\]]+""")


def _quoted_end(data: bytes, start: int, opening: bytes) -> tuple[int, bool]:
    """(end, closed) of the quoted value opening at `start` with `opening` (a quote after zero or
    more backslashes). It closes at the first same quote after exactly as many backslashes: a quote
    inside the value carries more (\\" in "...", \\\\\\" in \\"...\\"). Unclosed: it runs to the end."""
    quote_char, depth = opening[-1:], len(opening) - 1
    at = start + len(opening)
    while (at := data.find(quote_char, at)) >= 0:
        run = at
        while run > start and data[run - 1] == 0x5C:  # backslash
            run -= 1
        if at - run == depth:
            return at + 1, True
        at += 1
    return len(data), False


def _masked_value(data: bytes, value: Any) -> tuple[bytes, int]:
    """The replacement of the secret value matched by `value` (quoting kept; masked stays masked)
    and where the value ends."""
    text, start, end = value.group(0), value.start(), value.end()
    if text.startswith(b"[REDACTED") or text == b"<_>":  # masked already; a Loki pattern's slot
        return text, end
    scheme = value.group(1)
    if scheme:
        rest = text[len(scheme) :]
        return (text if rest.startswith(b"[REDACTED") else scheme + MASK_BYTES), end
    if text[-1:] in (b'"', b"'"):
        end, closed = _quoted_end(data, start, text)
        inner = data[start + len(text) : end - len(text) if closed else end]
        if inner == MASK_BYTES:
            return data[start:end], end
        return text + MASK_BYTES + (text if closed else b""), end
    return MASK_BYTES, end


def mask_pairs(data: bytes) -> bytes:
    """Every value whose key `sensitive_name` accepts, masked. Keys are found by one search each;
    a value is read (anchored) only after a sensitive key, so the work stays linear."""
    out: list[bytes] = []
    done = pos = 0
    search, value_at = _PAIR_KEY_RE.search, _VALUE_RE.match
    while (found := search(data, pos)) is not None:
        pos = found.end()
        key = found.group(1) if found.group(1) is not None else found.group(2)
        if not sensitive_key(key[-MAX_KEY_CHARS:]):
            if pos == found.start():  # an empty match cannot happen (a key needs a trigger); be safe
                pos += 1
            continue
        value = value_at(data, pos)
        if value is None:
            continue
        replacement, end = _masked_value(data, value)
        out += (data[done:pos], replacement)
        done = pos = end
    if not out:
        return data
    out.append(data[done:])
    return b"".join(out)

