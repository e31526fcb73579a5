"""Mask secrets in log text before it leaves the gateway (returned lines, labels, patterns, LLM
prompts and summaries).

Every pattern here is RE2 (linear time whatever the line: Python's `re` backtracks quadratically
on lines such as 80 KB of `://a.a.a...`, which froze the event loop for minutes) and runs over
UTF-8 bytes, so a line is encoded once, not on each search. One trigger scan finds the few lines
that may hold a secret (for a page of lines: one scan over all of them); every other line skips
the substitutions. A line that gets them skips each rule whose required text it lacks.

`name=value` pairs: any key followed by a separator is a candidate when it holds a trigger word
(or an escape, or non-ASCII text); the key is then decoded (JSON `\\uXXXX`, `%XX`, NFKC folding
of fullwidth letters, zero-width characters dropped) and judged by `sensitive_name`, so
`token_value=`, `passphrase=`, `pass\\u0077ord`, a fullwidth `password` and `--password S` are all caught.

Out of reach (see docs/redaction.md): a secret with no name or shape that marks it, and what a
query can compute from a secret without returning it (a line filter used as an oracle)."""

from __future__ import annotations

import operator
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, pairwise, repeat
from typing import Any
from urllib.parse import unquote

import re2

MASK = "[REDACTED]"
_MASK_BYTES = MASK.encode()

_SENSITIVE_FIELDS = (
    r"password|passwd|pwd|pass|passphrase|secret|client[_-]?secret|secret[_-]?key|api[_-]?key|apikey"
    r"|access[_-]?key|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|auth[_-]?token"
    r"|access[_-]?token|refresh[_-]?token|token|credentials?|x-api-key|authorization|cookie"
)

# Text that a key holding a secret contains (in some case); escapes and non-ASCII text too, as the
# key is only decoded after it was found.
_KEY_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "credential", "auth", "cookie")

# Any of these (in any case) must appear for a line to possibly hold a secret.
_TRIGGERS = (
    *_KEY_TRIGGERS,
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


def _bytes_re(pattern: str) -> Any:
    return re2.compile(pattern.encode())


# -- name=value pairs ---------------------------------------------------------------------------

# a key character: letters and digits of any script, _ . -, format characters (zero-width), and
# escapes (\uXXXX at any JSON nesting depth, %XX) other than those of = and : (which separate)
_KEY_CHAR = (
    r"(?:[\pL\pN_.\-\p{Cf}]"
    r"|\\+u(?:[1-9a-fA-F][0-9a-fA-F]{3}|0[1-9a-fA-F][0-9a-fA-F]{2}|00[0-24-9a-fA-F][0-9a-fA-F]"
    r"|003[0-9b-cB-CeEfF])"
    r"|%(?:[0-24-9a-fA-F][0-9a-fA-F]|3[0-9b-cB-CeEfF]))"
)
_KEY = rf"{_KEY_CHAR}*(?i:{'|'.join(_KEY_TRIGGERS)}|\\u|%|[^\x00-\x7f]){_KEY_CHAR}*"
_SPACE = r"(?:\s|\\+[tnr])*"  # a JSON-encoded line writes a tab as \t
_SEPARATOR = rf"{_SPACE}(?:=>|:=|[:=]|%3[dDaA]|\\+u003[dDaA]|&#(?:0*(?:58|61)|[xX]0*3[aAdD]);){_SPACE}"
# `key<sep>` or a command-line flag `--key value`; group 1: a flag's key, group 2: a pair's key
_PAIR_KEY_RE = _bytes_re(rf"""(?:^|[\s"'])--?({_KEY})[ \t]+|({_KEY})(?:\\*["'])?{_SEPARATOR}""")
_AUTH_SCHEME = r"(?i:bearer|basic|digest|negotiate|apikey|token)[ \t]+"
# the value after the separator: a quote (escaped at any depth: \", \\\") starts a quoted value;
# otherwise group 1 is an auth scheme word kept in front of the masked value
_VALUE_RE = _bytes_re(rf"""\\*["']|\[[^\]]*\]?|({_AUTH_SCHEME})?[^\s"',;&}}\]]+""")
_MAX_KEY_CHARS = 256  # a key's trailing words decide; a 60 KB key is not read whole
# invisible but not format characters (those go by category): combining grapheme joiner, Hangul
# and Khmer fillers
_INVISIBLE: dict[int, None] = dict.fromkeys((0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0))
_JSON_ESCAPE_RE = re.compile(r"\\+u([0-9a-fA-F]{4})")


def _plain_key(raw: str) -> str:
    """A key as a reader would see it: escapes decoded, compatibility forms folded (fullwidth,
    long s, Kelvin sign), invisible characters dropped, quotes and dashes around it stripped."""
    key = _JSON_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), raw[-_MAX_KEY_CHARS:])
    key = unicodedata.normalize("NFKC", unquote(key))
    key = "".join(c for c in key if unicodedata.category(c) != "Cf").translate(_INVISIBLE)
    return key.strip("\"'-_. ")


@lru_cache(maxsize=4096)  # keys repeat from line to line
def _sensitive_key(key: bytes) -> bool:
    text = key.decode(errors="replace")
    if key.isascii() and b"\\" not in key and b"%" not in key:
        return sensitive_name(text.strip("-_."))
    return sensitive_name(_plain_key(text))


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
        return (text if rest.startswith(b"[REDACTED") else scheme + _MASK_BYTES), end
    if text[-1:] in (b'"', b"'"):
        end, closed = _quoted_end(data, start, text)
        inner = data[start + len(text) : end - len(text) if closed else end]
        if inner == _MASK_BYTES:
            return data[start:end], end
        return text + _MASK_BYTES + (text if closed else b""), end
    return _MASK_BYTES, end


def _mask_pairs(data: bytes) -> bytes:
    """Every value whose key `sensitive_name` accepts, masked. Keys are found by one search each;
    a value is read (anchored) only after a sensitive key, so the work stays linear."""
    out: list[bytes] = []
    done = pos = 0
    search, value_at = _PAIR_KEY_RE.search, _VALUE_RE.match
    while (found := search(data, pos)) is not None:
        pos = found.end()
        key = found.group(1) if found.group(1) is not None else found.group(2)
        if not _sensitive_key(key[-_MAX_KEY_CHARS:]):
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


# -- ordered rules ------------------------------------------------------------------------------

Replacement = Callable[[Any], bytes]  # an RE2 match


@dataclass(frozen=True)
class _Rule:
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
        return any(map(data.__contains__, self.needs))


def _sub(pattern: str, replacement: bytes | Replacement) -> Callable[[bytes], bytes]:
    """RE2 substitution: `replacement` is literal bytes (no group references) or a function."""
    compiled = _bytes_re(pattern)

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
    if _sensitive_key(match.group(1)[-_MAX_KEY_CHARS:]) and match.group(2) not in (b"", _MASK_BYTES):
        return whole[: match.start(2) - match.start(0)] + _MASK_BYTES
    return whole


# Ordered: whole blocks and self-describing tokens first, then `name=value` pairs.
_RULES: tuple[_Rule, ...] = (
    _Rule(
        _sub(
            r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*$)",
            b"[REDACTED PRIVATE KEY]",
        ),
        (b"PRIVATE KEY-----",),
    ),
    _Rule(_sub(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", b"[REDACTED JWT]"), (b"eyJ",)),
    _Rule(
        # `BearerS` too: a bearer token glued to the word
        _sub(
            r"(?i)\b(bearer\s*|(?:basic|apikey|token)\s+)[A-Za-z0-9._~+/=-]{8,}", _keep_group_1(_MASK_BYTES)
        ),
        (b"bearer", b"basic", b"apikey", b"token"),
        any_case=True,
    ),
    # user:password@ in URLs (any scheme); the user name stays for debugging
    _Rule(
        _sub(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", _keep_group_1(_MASK_BYTES + b"@")),
        (b"://",),
    ),
    _Rule(
        _sub(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b", b"[REDACTED AWS KEY]"),
        (b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA"),
    ),
    _Rule(
        _sub(r"\b(?:sk|rk|pk)[-_](?:live[-_]|test[-_]|proj[-_]|ant[-_])?[A-Za-z0-9_-]{16,}", _MASK_BYTES),
        (b"k-", b"k_"),
    ),
    _Rule(_sub(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", _MASK_BYTES), (b"gh",)),
    _Rule(_sub(r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _MASK_BYTES), (b"xox",)),
    _Rule(_sub(r"\bAIza[0-9A-Za-z_-]{35}\b", _MASK_BYTES), (b"AIza",)),
    _Rule(_sub(r"\bgwk_[A-Za-z0-9_-]{20,}", _MASK_BYTES), (b"gwk_",)),  # this gateway's own keys
    _Rule(
        _sub(
            r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+",
            _keep_group_1(_MASK_BYTES),
        ),
        (b"hooks.slack.com",),
    ),
    # name=value / name: value / "name": "value" / name => value / --name value
    _Rule(_mask_pairs, (*(t.encode() for t in _KEY_TRIGGERS), b"\\u", b"%"), any_case=True),
    # <password>...</password>
    _Rule(_sub(rf"<({_KEY_CHAR}+)(?:\s[^<>]*)?>([^<]*)", _xml_element), (b"</",)),
)


def _lowered(data: bytes) -> bytes | None:
    return data.lower() if data.isascii() else None


def _substitute_bytes(data: bytes) -> bytes:
    lowered = _lowered(data)
    for rule in _RULES:
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
    for rule in _RULES:
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


_SENSITIVE_NAME_RE = re.compile(rf"(?i)(?:{_SENSITIVE_FIELDS})")
# the words of a name: db_password -> db, password; githubToken -> github, Token; PGPASSWORD -> PGPASSWORD
_NAME_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z0-9]+(?![a-z])")
_SECRET_WORD_ENDINGS = ("password", "passwd", "passphrase", "secret")  # long enough to match inside
# a last word that makes the name about the secret, not the secret: token_count, secret_name, key_id
_ABOUT_WORDS = frozenset({"count", "counts", "len", "length", "limit", "size", "type", "name", "id", "ttl",
                          "expiry", "expires", "used", "hint", "set", "ok", "valid"})


def sensitive_name(name: str) -> bool:
    """A field or label name that says its value is a secret: the name, a word of it, two words of
    it together (api_key in db_api_key) or a word ending in password/secret (PGPASSWORD). Counts
    such as prompt_tokens are not secrets (`tokens` is not `token`), nor is token_count."""
    name = name[-_MAX_KEY_CHARS:]
    if _SENSITIVE_NAME_RE.fullmatch(name):
        return True
    words = [word.lower() for word in _NAME_WORD_RE.findall(name)]
    if words and words[-1] in _ABOUT_WORDS:
        return False
    pairs = [first + "_" + second for first, second in pairwise(words)]
    return any(
        _SENSITIVE_NAME_RE.fullmatch(word) or word.endswith(_SECRET_WORD_ENDINGS) for word in (*words, *pairs)
    )


# Loki's parsers write `_` for each character a label name cannot hold: `| json` turns a field
# named `password` in fullwidth letters into `________`, a name nobody can judge any more (Loki's
# own names, __error__ and __error_details__, have no run of three)
_UNREADABLE_NAME_RE = re.compile(r"___")


def field_needs_mask(name: str) -> bool:
    """A label or field name whose value is masked whole: it names a secret, or it was made
    unreadable by Loki's label-name sanitising."""
    return sensitive_name(_plain_key(name)) or _UNREADABLE_NAME_RE.search(name) is not None


def redact_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Label or structured-metadata values redacted: wholly when the name says it holds a secret
    (parsed labels such as `| json` turn a line's `db_password` field into a label), else as text."""
    return {k: MASK if field_needs_mask(k) else redact(v) for k, v in fields.items()}


def redact_patterns(patterns: list[Any]) -> list[Any]:
    """Loki's detected patterns (`{"pattern": "...", "samples": [...]}`, plus labels in newer
    versions) with pattern text and label values redacted like lines."""
    texts: list[str] = [
        p["pattern"] if isinstance(p, dict) and isinstance(p.get("pattern"), str) else "" for p in patterns
    ]
    masked = redact_many(texts)
    out: list[Any] = []
    for item, text in zip(patterns, masked, strict=True):
        if not isinstance(item, dict):
            out.append(item)
            continue
        item = {**item, "pattern": text} if isinstance(item.get("pattern"), str) else dict(item)
        for name in ("labels", "stream", "metric"):
            value = item.get(name)
            if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                item[name] = redact_fields(value)
        out.append(item)
    return out


def redact_nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`redact_fields` for metadata of any depth, such as Loki's categorized labels
    (`{"structuredMetadata": {...}, "parsed": {...}}`): a string under a sensitive or unreadable
    name is masked whole, other strings are redacted as text, mappings and lists are walked."""
    return {name: _redact_value(name, value) for name, value in fields.items()}


def _redact_value(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return MASK if field_needs_mask(name) else redact(value)
    if isinstance(value, Mapping):
        return redact_nested(value)
    if isinstance(value, list):
        return [_redact_value(name, item) for item in value]
    return value
