"""Mask secrets in log text before it leaves the gateway (returned lines, LLM prompts).

Patterns are precompiled. One RE2 trigger scan finds the few lines that may hold a secret (for a
page of lines: one scan over all of them); every other line skips the ordered substitutions. A
line that gets them skips each rule whose required text it lacks.

Not caught, as nothing marks it as a secret: a bare value that a query itself turns into the whole
line or a label (`| json | line_format "{{.password}}"`) without its name."""

from __future__ import annotations

import operator
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate, pairwise, repeat

import re2

MASK = "[REDACTED]"

_SENSITIVE_FIELDS = (
    r"password|passwd|pwd|pass|secret|client[_-]?secret|secret[_-]?key|api[_-]?key|apikey"
    r"|access[_-]?key|aws[_-]?secret[_-]?access[_-]?key|private[_-]?key|auth[_-]?token"
    r"|access[_-]?token|refresh[_-]?token|token|credentials?|x-api-key"
)
_FIELD_FIRST_LETTERS = "".join(sorted({name[0] for name in _SENSITIVE_FIELDS.split("|")}))

# Any of these (in any case) must appear for a line to possibly hold a secret. RE2 checks them
# all in one linear pass (~0.3 ms for a 1,000-line page; Python's re needs ten times that).
_TRIGGERS = (
    "pass",
    "pwd",
    "secret",
    "key",
    "token",
    "credential",
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

_TRIGGER_RE = re2.compile("(?i)" + "|".join(re2.escape(trigger) for trigger in _TRIGGERS))
# The same over UTF-8 bytes (RE2's default for byte patterns, with the same Unicode case folding):
# searching a str makes the binding encode all of it and map offsets on every call.
_TRIGGER_BYTES_RE = re2.compile(_TRIGGER_RE.pattern.encode())


def _mask_pair(match: re.Match[str]) -> str:
    """Keep a `name=` pair's name and quoting, mask its value (once: already masked stays)."""
    value = match.group(2)
    if value.startswith('\\"'):  # JSON inside a JSON string: {\"password\":\"...\"}
        return f'{match.group(1)}\\"{MASK}\\"'
    if value[:1] in {'"', "'"}:
        return f"{match.group(1)}{value[0]}{MASK}{value[0]}"
    if value == MASK or value.startswith("[REDACTED"):
        return match.group(0)
    return f"{match.group(1)}{MASK}"


@dataclass(frozen=True)
class _Rule:
    """A substitution, and text the pattern cannot match without: `needs` (any of them) must
    occur in the line, in the line lower-cased when `any_case` (ASCII lines only: other lines
    always get the substitution, as case folding beyond ASCII is the regex engine's business)."""

    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    needs: tuple[str, ...]
    any_case: bool = False

    def may_match(self, text: str, lowered: str | None) -> bool:
        """`lowered`: `text` lower-cased, None when `text` is not ASCII."""
        if self.any_case:
            if lowered is None:
                return True
            text = lowered
        return any(map(text.__contains__, self.needs))


# Ordered: whole blocks and self-describing tokens first, then `name=value` pairs.
_RULES: tuple[_Rule, ...] = (
    _Rule(
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*\Z)",
            re.DOTALL,
        ),
        "[REDACTED PRIVATE KEY]",
        ("PRIVATE KEY-----",),
    ),
    _Rule(
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED JWT]", ("eyJ",)
    ),
    _Rule(
        re.compile(r"(?i)\b(bearer|basic|apikey|token)(\s+)[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1\2{MASK}",
        ("bearer", "basic", "apikey", "token"),
        any_case=True,
    ),
    # user:password@ in URLs (any scheme); the user name stays for debugging
    _Rule(re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"), rf"\1{MASK}@", ("://",)),
    _Rule(
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
        "[REDACTED AWS KEY]",
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA"),
    ),
    _Rule(
        re.compile(r"\b(?:sk|rk|pk)[-_](?:live[-_]|test[-_]|proj[-_]|ant[-_])?[A-Za-z0-9_-]{16,}"),
        MASK,
        ("k-", "k_"),
    ),
    _Rule(re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), MASK, ("gh",)),
    _Rule(re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK, ("xox",)),
    _Rule(re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK, ("AIza",)),
    _Rule(re.compile(r"\bgwk_[A-Za-z0-9_-]{20,}"), MASK, ("gwk_",)),  # this gateway's own keys
    _Rule(
        re.compile(r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+"),
        rf"\1{MASK}",
        ("hooks.slack.com",),
    ),
    # name=value / name: value / "name": "value" / name => value — keeps the name, masks the
    # value. The name starts a word, a camelCase part (dbPassword) or, for the long names, ends an
    # upper-case one (PGPASSWORD).
    _Rule(
        re.compile(
            # the names' first letters first: most places in a line fail that one cheap test
            rf"(?i)(?=[{_FIELD_FIRST_LETTERS}])"
            r"(?:(?<![A-Za-z0-9])|(?-i:(?<=[a-z0-9])(?=[A-Z]))|(?-i:(?<=[A-Z0-9])(?=PASSWORD|PASSWD|SECRET)))"
            rf"""((?:{_SENSITIVE_FIELDS})\\?["']?\s*(?:=>|:=|[:=])\s*)"""
            r"""(\\"(?:[^"\\]|\\[^"])*\\"|"[^"]*"|'[^']*'|[^\s"',;&}\]]+)"""
        ),
        _mask_pair,
        ("pass", "pwd", "secret", "key", "token", "credential"),
        any_case=True,
    ),
    # <password>...</password>
    _Rule(
        re.compile(rf"(?i)<((?:{_SENSITIVE_FIELDS}))>[^<]*</\1>"),
        rf"<\1>{MASK}</\1>",
        ("</",),
    ),
)


def _may_hold_secret(text: str) -> bool:
    return _TRIGGER_RE.search(text) is not None


def _lowered(text: str) -> str | None:
    return text.lower() if text.isascii() else None


def _substitute(text: str) -> str:
    lowered = _lowered(text)
    for rule in _RULES:
        if rule.may_match(text, lowered):
            masked = rule.pattern.sub(rule.replacement, text)
            if masked != text:
                text, lowered = masked, _lowered(masked)
    return text


def redact_many(lines: list[str]) -> list[str]:
    """`redact` over many lines: one trigger scan over all of them (joined) finds the lines that
    need the substitutions; `lines` itself comes back when none does."""
    if not lines:
        return lines
    text = "\n".join(lines)
    if text.isascii():
        data, sizes = text.encode("ascii"), list(map(len, lines))
    else:
        encoded = [line.encode() for line in lines]
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
    if not _may_hold_secret(text):
        return text
    return _substitute(text)


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
    if _SENSITIVE_NAME_RE.fullmatch(name):
        return True
    words = [word.lower() for word in _NAME_WORD_RE.findall(name)]
    if words and words[-1] in _ABOUT_WORDS:
        return False
    pairs = [first + "_" + second for first, second in pairwise(words)]
    return any(
        _SENSITIVE_NAME_RE.fullmatch(word) or word.endswith(_SECRET_WORD_ENDINGS) for word in (*words, *pairs)
    )


def redact_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Label or structured-metadata values redacted: wholly when the name says it holds a secret
    (parsed labels such as `| json` turn a line's `db_password` field into a label), else as text."""
    return {k: MASK if sensitive_name(k) else redact(v) for k, v in fields.items()}
